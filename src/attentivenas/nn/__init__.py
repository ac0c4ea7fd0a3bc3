"""Networks: the dynamic ops and their static twins, the supernet, BN calibration, checkpoints.

Lives here: ``layers`` (activations, resize, pooling, drop-connect, weight slicing), ``small_maps``
(convolutions on tiny maps), ``static`` (plain ``torch.nn`` modules and :class:`StaticSubnet`), ``dynamic``
(the weight-sharing ops, each with ``to_static``), ``supernet`` (:class:`Supernet`), ``bn`` (BN
recalibration on cached batches), ``checkpoint`` (our layout and the authors'; fine-tuned subnets) and
``memory`` (measured memory of a module). How runtimes run a model lives one floor up, in
:mod:`attentivenas.runtimes`; the files a user takes away in :mod:`attentivenas.export`.

May import: ``attentivenas.space``, ``attentivenas.costs``, ``attentivenas.errors``, ``attentivenas.io``.
"""

from .bn import CalibrationDataError, cache_calibration_batches, calibrate_bn, to_model_resolution
from .checkpoint import (
    FORMAT,
    SUBNET_KIND,
    VERSION,
    SubnetHost,
    authors_state_dict,
    is_authors,
    is_ours,
    is_subnet_checkpoint,
    load_checkpoint_model,
    load_subnet_checkpoint,
    load_supernet,
    payload_checksum,
    read_checkpoint,
    save_supernet,
    sealed,
    subnet_payload,
    supernet_payload,
    supernet_weights,
)
from .layers import resize_input
from .memory import measure_peak_activation_bytes, measure_weight_bytes
from .static import StaticSubnet
from .supernet import Supernet

__all__ = [
    "CalibrationDataError", "cache_calibration_batches", "calibrate_bn", "to_model_resolution", "FORMAT",
    "VERSION", "authors_state_dict", "is_authors", "is_ours", "load_supernet", "payload_checksum",
    "read_checkpoint", "save_supernet", "sealed", "supernet_payload", "SUBNET_KIND", "SubnetHost",
    "is_subnet_checkpoint", "load_checkpoint_model", "load_subnet_checkpoint", "subnet_payload",
    "supernet_weights", "resize_input", "measure_peak_activation_bytes", "measure_weight_bytes", "StaticSubnet",
    "Supernet",
]
