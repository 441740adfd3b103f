"""Datasets in audiobench's format: the index, its samples and their inputs.

`index` reads and writes a dataset directory; `demo` writes the synthetic demo dataset;
`vggsound` prepares VGGSound; `training` serves training crops to a trainer.
"""

from audiobench.data.index import (
    INDEX_COLUMNS,
    INDEX_FILE,
    SAMPLE_RATE,
    Sample,
    dataset_identity,
    frame_policy,
    index_sha256,
    input_hashes,
    load_index,
    read_audio_window,
    read_frame,
    write_index,
)

__all__ = [
    "INDEX_COLUMNS",
    "INDEX_FILE",
    "SAMPLE_RATE",
    "Sample",
    "dataset_identity",
    "frame_policy",
    "index_sha256",
    "input_hashes",
    "load_index",
    "read_audio_window",
    "read_frame",
    "write_index",
]
