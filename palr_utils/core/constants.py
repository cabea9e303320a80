"""Names shared by every stage: columns, artifact files, notebook order.

Keeping them here means a notebook, a test and a helper can never disagree
about what a column or a file is called.
"""

# Canonical columns of the interaction table (after parsing, before and after preprocessing).
USER = "user"
ITEM = "item"
TIMESTAMP = "timestamp"
RATING = "rating"
SPLIT = "split"

# Canonical columns of the item table.
TITLE = "title"
ATTRIBUTES = "attributes"  # a list of strings: genres for MovieLens, categories for Beauty

# Columns that keep the original ids next to the contiguous ones (the saved id maps).
RAW_USER = "raw_user_id"
RAW_ITEM = "raw_item_id"

# Values of the SPLIT column (leave-one-out).
TRAIN = "train"
VALID = "valid"
TEST = "test"

# Artifact files written by notebook 01 under ARTIFACT_DIR.
INTERACTIONS_FILE = "interactions.parquet"
ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"
METRICS_DIR = "metrics"
# Stages whose output files belong together: each commits them with a manifest (palr_utils.core.io.ArtifactSet),
# written last, that later stages check.
MANIFESTS_DIR = "manifests"
STAGES_WITH_MANIFEST = ("01_preprocessing", "03_sasrec_retrieval")
# Notebook 03's retrievers keep their checkpoints in ARTIFACT_DIR/checkpoints/<name>; the twin trained one step back
# (without each user's last training item) gives notebook 04 its training candidates and item tokens.
CHECKPOINTS_DIR = "checkpoints"
TWIN_RETRIEVER = "sasrec_one_step_back"

DATASETS = ("ml-1m", "beauty", "custom", "synthetic")
# How prompts speak of a catalogue's items (palr_utils.llm.prompts.DOMAIN_WORDS); a custom data folder may declare
# its own in dataset.json, e.g. {"domain": "book"}.
DOMAINS = ("movie", "product", "book", "item")

# The notebooks in teaching order; a stage names the one that produces its inputs.
NOTEBOOKS = (
    "01_preprocessing",
    "02_user_profiles",
    "03_sasrec_retrieval",
    "04_finetune_palr",
    "05_evaluation",
)
