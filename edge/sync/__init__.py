"""District sync: durable outbox to the district xAPI LRS, heartbeat, OneRoster roster import."""
