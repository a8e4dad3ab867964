"""Convolutional CHL / EP against conv backpropagation and BPTT in the same run.

Rate EP on conv layers (``models/<data>-chl-conv-rate.yaml``: feedback through the transposed
convolution, ±β nudging) against BP on the same conv network, optimizer, batch and epochs;
STDP-style spiking CHL on conv layers (``models/<data>-chl-conv-snn.yaml``) against
surrogate-gradient BPTT on the same LIF conv network and encoder. Everything else is
``bench_chl.py`` (interleaved epochs, seconds per epoch, training memory in a child process, memory
against the number of steps, ``--sweep``: accuracy against steps per phase; ``--emulator``: the
trained spiking CHL network through the Loihi fixed-point emulator).

    python benchmarks/bench_conv_chl.py --data digits --sweep --emulator
    python benchmarks/bench_conv_chl.py --data fashion-mnist --train-limit 6000 \
        --rate-epochs 2 --snn-epochs 1 --emulator
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_chl import main  # noqa: E402

if __name__ == "__main__":
    main(stem="chl-conv", title="Conv CHL / EP vs conv BP and BPTT", description=__doc__)
