"""xAPI 1.0.3 as pure domain modules, shared by the mastery LRS and the district sync: formats, fields,
agents, activities (validation by object type), validate (whole statements), statements (prepare, index,
formats), query (GET parameters), documents (document resource parameters), multipart (attachments and
signatures), vocab (the appliance's own statements and evidence).

The names other layers use are re-exported here.
"""

from edge.xapi.statements import Item, StatementIndex, index_of, prepare_statements
from edge.xapi.vocab import (
    ANSWERED,
    AUTH_USER,
    AUTHORITY,
    BASE,
    EVIDENCE_VERBS,
    MASTERY_EXTENSION,
    OBJECTIVE_TYPE,
    ROOM_EXTENSION,
    SCHOOL_EXTENSION,
    SKILL_EXTENSION,
    SNAPSHOT_VERB,
    XAPI_VERSION,
    Evidence,
    canonical,
    digest,
    digest_text,
    evidence_of,
    evidence_statement,
    iso,
    now_us,
    parse_compact,
    skill_iri,
    snapshot_item,
    snapshot_statement,
)

__all__ = [
    "ANSWERED", "AUTHORITY", "AUTH_USER", "BASE", "EVIDENCE_VERBS", "MASTERY_EXTENSION", "OBJECTIVE_TYPE",
    "ROOM_EXTENSION", "SCHOOL_EXTENSION", "SKILL_EXTENSION", "SNAPSHOT_VERB", "XAPI_VERSION", "Evidence", "Item",
    "StatementIndex", "canonical", "digest", "digest_text", "evidence_of", "evidence_statement", "index_of", "iso",
    "now_us", "parse_compact", "prepare_statements", "skill_iri", "snapshot_item", "snapshot_statement",
]
