"""Exercise 1: layer arithmetic of convolutional networks, exact and without torch.

    arith.py        output sizes, parameters, MACs, memory: pure integer functions
    field.py        receptive fields and jumps: index maps, AxisField, bounded work
    spec.py         layer text ("Conv2d(20, kernel_size=3)") <-> LayerSpec, parsed with ast, never eval'd;
                    the bounds on sizes, numbers and text (2**31 - 1, 1,000 characters, 1,000 layers)
    stack.py        a stack of layers through an input shape: one row per layer, totals
    explain.py      the formulas of a row with its numbers in
    table.py        the text table of a stack, as `vaekit arch` prints it; dims
    sheet.py        the sheet's Ex.1 answers (Q1-Q3) from arith, their prose, the dense-vs-conv scaling table
    from_module.py  a torch nn.Module -> layer text -> per-layer shapes, params, MACs (the one torch import)
"""
