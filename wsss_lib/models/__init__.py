"""Models: timm backbones, frozen batch norm, pretrained-weight loading, the CAM classifier and its helpers."""

from wsss_lib.models.backbone import Backbone, BackboneConfig, create_backbone, param_groups
from wsss_lib.models.cam import CAMClassifier, CAMOutput, cams_to_labels, create_cam_classifier, psi
from wsss_lib.models.norm import freeze_batch_norm, has_trainable_batch_norm
from wsss_lib.models.weights import (
    classifier_only_keys,
    create_timm_pretrained,
    load_checkpoint,
    load_offline_lite0,
    load_state_dict_strict,
    lukemelas_lite_to_timm,
    offline_lite0_path,
    read_state_dict,
)

__all__ = [
    "Backbone",
    "BackboneConfig",
    "create_backbone",
    "param_groups",
    "CAMClassifier",
    "CAMOutput",
    "create_cam_classifier",
    "psi",
    "cams_to_labels",
    "freeze_batch_norm",
    "has_trainable_batch_norm",
    "read_state_dict",
    "load_state_dict_strict",
    "load_checkpoint",
    "classifier_only_keys",
    "create_timm_pretrained",
    "offline_lite0_path",
    "lukemelas_lite_to_timm",
    "load_offline_lite0",
]
