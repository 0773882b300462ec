"""Library errors: every failure a user can fix is one of these, with a message naming the fix.

The CLI turns them into one clean line and a non-zero exit; nothing else in the library prints.
"""


class FTError(Exception):
    """Base class for every error ft-artifacts raises on purpose."""


class ModelLoadError(FTError):
    """The requested model could not be found, reached, or is not a BERT-layout encoder."""


class NeuronNameError(FTError, ValueError):
    """A neuron name is malformed or out of range for the loaded model."""


class ObjectiveError(FTError, ValueError):
    """An objective (neuron, group, word) is invalid for the loaded model or artifact."""


class ArtifactError(FTError):
    """An artifact folder or repository is missing, incomplete, or inconsistent."""


class ChecksumError(ArtifactError):
    """A file in an artifact does not match the sha256 recorded in build_info.json."""


class DeviceMemoryError(FTError):
    """The device ran out of memory (CUDA out of memory): the message names a smaller --chunk-rows."""


class PublishError(FTError):
    """Publishing an artifact to the Hugging Face Hub failed."""
