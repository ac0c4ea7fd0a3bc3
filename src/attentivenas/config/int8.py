"""The one INT8 recipe: which runtime quantizes a subnet, on which calibration images (how many and their
seed), and where its accuracy is checked.

:class:`Int8Config` is the search's ``int8`` section (the quantization half); :class:`Int8Recipe` adds the
accuracy check of ``export --precision int8`` and bundles. Both sides draw their images with
:func:`attentivenas.accuracy.int8_data.draw_int8_images`, so a Pareto set chosen on its INT8 top-1 is
exported quantized on the images the search measured it with.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .base import Section

#: the precisions a subnet is measured or exported in (= ``runtimes.quantize.PRECISIONS``)
Precision = Literal["fp32", "int8"]
#: the splits an INT8 export's accuracy check draws from
CheckSplit = Literal["holdout", "test"]
MAX_CALIB_IMAGES = 8_192  # calibration images are held in memory: 8,192 at 224 px are 4.9 GB
MAX_CHECK_IMAGES = 10_000  # check images are held in memory too (with their labels)
#: Calibration images by default (= ``runtimes.quantize.DEFAULT_CALIB_IMAGES``, which says why 256).
DEFAULT_CALIB_IMAGES = 256
#: Images of the accuracy check by default (= ``runtimes.quantize.DEFAULT_CHECK_IMAGES``).
DEFAULT_CHECK_IMAGES = 500
#: Largest top-1 drop (points) of the check before a warning (= ``runtimes.quantize.DEFAULT_MAX_INT8_DROP``).
DEFAULT_MAX_INT8_DROP = 2.0
#: The calibration images are drawn with the measurement's calibration seed + this offset (apart from the BN
#: calibration crops, drawn with the seed itself). One value for the search, ``export --precision int8`` and
#: bundles: the search's (8; the export used + 1 before), so the INT8 files of a Pareto set chosen on INT8
#: accuracy are quantized on the very images the search measured them with.
INT8_CALIB_SEED_OFFSET = 8


class Int8Config(Section):
    """How a subnet is quantized (the search's ``int8`` section): the subnet extracted and BN recalibrated
    as for its float top-1, then quantized (static, calibrated on seeded training images) and run in
    ``runtime``."""

    #: the seed offset of the calibration images (not a key: one value everywhere)
    calib_seed_offset: ClassVar[int] = INT8_CALIB_SEED_OFFSET

    #: one of the runtimes with an INT8 quantizer (onnxruntime: the fastest to quantize and run for accuracy); a
    #: plain string, as ``config`` sits below the runtimes' records: checked against them by
    #: :func:`attentivenas.runtimes.quantize.int8_runtime` where a search or the quick start starts
    runtime: str = "onnxruntime"
    calib_images: int | None = Field(None, ge=1, le=MAX_CALIB_IMAGES)  # null: DEFAULT_CALIB_IMAGES

    def calib_count(self) -> int:
        """The number of calibration images (``calib_images`` or the default)."""
        return int(self.calib_images or DEFAULT_CALIB_IMAGES)

    def calib_seed(self, seed: int) -> int:
        """The seed of the calibration images of a measurement whose BN calibration seed is ``seed``."""
        return int(seed) + self.calib_seed_offset


class Int8Recipe(Int8Config):
    """The quantization plus the accuracy check of an INT8 export: ``check_images`` images (a seeded random
    subset of ``check_split``; 0: no check), and the top-1 drop (points) above which a warning says so."""

    check_split: CheckSplit = "test"
    check_images: int = Field(DEFAULT_CHECK_IMAGES, ge=0, le=MAX_CHECK_IMAGES)
    max_drop: float = Field(DEFAULT_MAX_INT8_DROP, ge=0.0, le=100.0)
