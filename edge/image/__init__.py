"""Images and cards: personalise a card per room (`edge image personalise`) and provision a unit at boot
(`edge image firstboot`). Builds live in image_build/; this package is what runs on the IT workstation
(personalise, no root) and on the unit (firstboot, as root, before the services)."""
