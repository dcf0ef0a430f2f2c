"""civharm: tools that keep the civilian-harm data package trustworthy."""

__version__ = "0.1.0"


def load(path_or_version=None, *, active_only=False):
    """Load the package as ``{table name: pandas DataFrame}``, typed from the schema.

    Defined here so that ``civharm.load(...)`` works while ``import civharm`` stays fast
    (pandas is imported only on the first call). See ``civharm.loading.load`` for the
    accepted arguments: None (this repository), a folder, a release zip or a version.
    """
    from .loading import load as _load

    return _load(path_or_version, active_only=active_only)
