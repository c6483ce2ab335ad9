"""The CuPy backend (``device="gpu"``): one folder, as ``cpu_fallback/`` is the CPU one.

- :mod:`gpu_media.cuda.backend` -- the backend object the registry loads by name
  (``gpu_media.backend``); it satisfies the ``Backend`` protocol structurally;
- :mod:`gpu_media.cuda.kernels` -- the CUDA kernels' loader (the shipped fatbin, else
  NVRTC) and their launchers; the sources are ``src/*.cuh`` and ``src/kernels.cu``,
  precompiled as ``src/kernels.fatbin`` (``scripts/build_kernels.py``);
- :mod:`gpu_media.cuda.nvimgcodec` -- JPEG (and host codecs) through nvImageCodec;
- :mod:`gpu_media.cuda.nvcomp` -- raw deflate on the GPU through nvCOMP (GPU PNG);
- :mod:`gpu_media.cuda.dali_reader` -- image files decoded on the GPU with DALI.

Importing this package imports nothing; each module imports CuPy or its library
when it is imported or first called, so ``gpu_media`` works with numpy and pillow only.
"""
