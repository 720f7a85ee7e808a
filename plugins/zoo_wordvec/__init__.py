"""zoo's word-vector plugin: static embeddings (word2vec, GloVe, fastText), usable with numpy alone.

`zoo_core.load(name)` gives a `WordVectors` table (vector, most_similar, embed, embedding); its models are
entries of the built-in ``registry.toml`` with ``plugin = "wordvec"``.
"""

from __future__ import annotations

from pathlib import Path

from zoo_core import CheckReport, Finding, ModelSpec, Requirement, hookimpl


@hookimpl
def plugin_requirements() -> list[Requirement]:
    return [Requirement("numpy", "pip install 'zoo-tl[wordvec]'")]


@hookimpl
def build_backbone(spec: ModelSpec, weights_dir: Path | None) -> object | None:
    if spec.plugin != "wordvec":
        return None
    from zoo_core.errors import PluginError
    from zoo_wordvec.vectors import load_vectors

    if weights_dir is None:
        raise PluginError(f"'{spec.name}' is a table of pretrained vectors: load it with pretrained=True")
    return load_vectors(spec, weights_dir)


@hookimpl
def check_input(spec: ModelSpec, data: object, report: CheckReport) -> list[Finding] | None:
    """The out-of-vocabulary rate against the model's vectors, after zoo's text check, for this plugin's models."""
    if spec.plugin != "wordvec":
        return None
    from zoo_core.loading import load
    from zoo_wordvec.check import vocabulary_findings

    return vocabulary_findings(load(spec), data)  # type: ignore[arg-type]
