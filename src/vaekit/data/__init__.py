"""Data (design.md, "Data"): IDX files, downloads, the registry and lookup order, datasets as one
uint8 tensor with fixed splits, and the one binarization law.

    idx.py            the IDX reader (MNIST's format), plain or gzip
    download.py       verified downloads to a temporary name
    registry.py       dataset names, where they are looked for, checksums
    dataset.py        Dataset / Split and the fixed, seeded splits
    load.py           loading any source by its name (checksums verified)
    readers.py        the readers of a user's data by path (a new file format: a module and a line there)
    arrays.py         user .npy/.npz arrays: accepted shapes and dtypes, never pickle
    folder.py         user image folders: two passes into one array, as a dataset
    image_files.py    which files of a folder are read, in which order, labels from class folders
    image_decode.py   one image: pixels, channels, resizing (ImageOptions); arrays resized alike
    png_check.py      a PNG whose image data ends before its last row (bounded inflation)
    folder_cache.py   the on-disk cache of decoded folders
    binarize.py       how pixels become x (dynamic, fixed, none, dequantize) and the evaluation protocol
"""
