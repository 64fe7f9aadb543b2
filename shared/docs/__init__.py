"""`state-rosetta docs`: the idioms guide, generated from the marked regions of the real code.

Each model contributes its sections ([`ModelDocs`][], [`Concept`][]) through its spec, and
the sections of no one model (checkpoints) follow them; this package cuts the regions out of
the framework files and writes the guide and the site.

Besides the sections' types, the generator's parts are public: what `state-rosetta docs`
does in steps (`check`, `write`, `build_site`), the region parser and its marker, where each
concept's regions are (`frameworks`, `concepts`, `source`, `extras`), the generated pages'
paths and labels, and the errors. They are the contract between the framework files'
markers and the site, which the docs tests check part by part, and which a fork that
renders the guide its own way builds on.
"""

from ._content import TOPICS, Concept, ModelDocs, Topic
from ._generate import (
    GOTCHAS_MD,
    MARKER,
    PERFORMANCE_MD,
    DocsError,
    build_site,
    check,
    concepts,
    default_result,
    extra_regions,
    extras,
    frameworks,
    parse_regions,
    read_regions,
    render_generated_blocks,
    source,
    top_level_spacing,
    write,
)
from ._pages import COLUMNS_LABEL, page_path
from ._site import CONFIG, SiteError

__all__ = [
    "COLUMNS_LABEL",
    "CONFIG",
    "GOTCHAS_MD",
    "MARKER",
    "PERFORMANCE_MD",
    "TOPICS",
    "Concept",
    "DocsError",
    "ModelDocs",
    "SiteError",
    "Topic",
    "build_site",
    "check",
    "concepts",
    "default_result",
    "extra_regions",
    "extras",
    "frameworks",
    "page_path",
    "parse_regions",
    "read_regions",
    "render_generated_blocks",
    "source",
    "top_level_spacing",
    "write",
]
