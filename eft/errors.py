"""Exceptions the user can act on.  The CLI prints them as one line, no traceback."""


class EftError(Exception):
    """Base class of every error caused by bad input, files or configuration."""


def did_you_mean(word: object, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``word`` (difflib),
    else ``""``: the tail of an "unknown key" message."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1,
                                      cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
