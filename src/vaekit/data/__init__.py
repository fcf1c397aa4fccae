"""Data (design.md, "Data"): IDX files, downloads, the registry and lookup order, datasets as one
uint8 tensor with fixed splits, and the one binarization law.

    idx.py        the IDX reader (MNIST's format), plain or gzip
    download.py   verified downloads to a temporary name
    registry.py   dataset names, where they are looked for, checksums
    load.py       Dataset / Split, loading (checksums verified) and splitting
    arrays.py     user .npy/.npz arrays: accepted shapes and dtypes, never pickle
    folder.py     user image folders: decoding, class folders, resizing, the cache
    binarize.py   how pixels become x (dynamic, fixed, none, dequantize) and the evaluation protocol
"""
