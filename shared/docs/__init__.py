"""`state-rosetta docs`: the idioms guide, generated from the marked regions of the real code.

Each model contributes its sections ([`ModelDocs`][], [`Concept`][]) through its spec, and
the sections of no one model (checkpoints) follow them; this package cuts the regions out of
the framework files and writes the guide and the site.
"""

from ._content import TOPICS, Concept, ModelDocs, Topic

__all__ = ["TOPICS", "Concept", "ModelDocs", "Topic"]
