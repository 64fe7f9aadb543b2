"""The decoder's sections of the idioms guide: each framework's cache idiom, cut from its file."""

DOCS = None
