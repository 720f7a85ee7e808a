"""`TransformerBackbone`: a BERT-family encoder from transformers behind zoo's `Backbone` surface.

Built with the Auto classes from the downloaded snapshot folder (safetensors only, never remote code).
Layer groups are the embeddings, each encoder layer, and the head (BERT's pooler with the classifier), so
"freeze all but the last N encoder layers" is `freeze(all_but_last=N + 1)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo_core.backbone import Backbone, LayerGroup, new_head
from zoo_core.errors import PluginError
from zoo_core.specs import ModelSpec, TextInput

Batch = Sequence[str] | dict[str, torch.Tensor]


class TransformerBackbone(Backbone):
    def __init__(self, spec: ModelSpec, weights_dir: Path | None) -> None:
        super().__init__(spec)
        from transformers import AutoModel, AutoTokenizer

        if weights_dir is None:
            raise PluginError(f"'{spec.name}' needs its config and tokenizer files: load it with pretrained=True")
        assert isinstance(spec.input, TextInput)
        self.text = spec.input
        # Any: transformers' models share attributes (config, encoder/transformer) their types do not declare
        self.encoder: Any = AutoModel.from_pretrained(weights_dir, trust_remote_code=False, use_safetensors=True)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(weights_dir, trust_remote_code=False)
        self.head: nn.Module | None = None

    @property
    def feature_dim(self) -> int:
        return int(self.encoder.config.hidden_size)

    def _layers(self) -> nn.ModuleList:
        owner = getattr(self.encoder, "encoder", None) or getattr(self.encoder, "transformer", None)
        layers = getattr(owner, "layer", None)
        if not isinstance(layers, nn.ModuleList):
            raise PluginError(f"'{self.spec.name}': cannot find the encoder layers of {type(self.encoder).__name__}")
        return layers

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.text.max_length, return_tensors="pt"
        )
        return dict(encoded)

    def features(self, x: Batch) -> torch.Tensor:  # type: ignore[override]
        """Sentence features of texts (or an already tokenised batch): [CLS] or the masked token mean."""
        batch = self.tokenize(x) if not isinstance(x, dict) else x
        device = next(self.encoder.parameters()).device
        batch = {key: value.to(device) for key, value in batch.items()}
        hidden: torch.Tensor = self.encoder(**batch).last_hidden_state
        if self.text.pooling == "cls":
            return hidden[:, 0]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    def embed(self, texts: Sequence[str]) -> Any:
        """Features as a numpy array, without gradients: for zero-shot and nearest-neighbour use."""
        with torch.no_grad():
            return self.features(texts).cpu().numpy()

    def forward(self, x: Batch) -> torch.Tensor:  # type: ignore[override]
        if self.head is None:
            raise PluginError(f"'{self.spec.name}' has no classifier yet: call reset_head(num_classes) first")
        logits: torch.Tensor = self.head(self.features(x))
        return logits

    def prepare_export(self) -> None:
        """Eager attention: its graph is the pattern onnxruntime's transformer optimiser fuses into Attention
        nodes (the SDPA kernel's is not); the numbers are the same."""
        self.encoder.set_attn_implementation("eager")

    def reset_head(self, num_classes: int) -> None:
        """A new head on the features; BERT's pooler, which they never read, goes with the old one."""
        self.head = new_head(self.feature_dim, num_classes)
        if getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None

    def drop_last(self, n: int) -> None:
        """The last `n` encoder layers go (the embeddings are the stem: all layers may go)."""
        layers = self._layers()
        if not 0 < n <= len(layers):
            raise ValueError(
                f"{self.spec.name} has {len(layers)} stages after its stem: drop_last takes 1 to {len(layers)}"
            )
        del layers[len(layers) - n :]
        for name in ("num_hidden_layers", "n_layers"):
            if hasattr(self.encoder.config, name):
                setattr(self.encoder.config, name, len(layers))
        self.reset_head(self.spec.output.num_classes or 1000)

    def layer_groups(self) -> list[LayerGroup]:
        layers = self._layers()
        groups = [LayerGroup("embeddings", (self.encoder.embeddings,))]
        groups += [LayerGroup(f"layer{index}", (layer,)) for index, layer in enumerate(layers)]
        head = tuple(module for module in (getattr(self.encoder, "pooler", None), self.head) if module is not None)
        return [*groups, LayerGroup("head", head)]
