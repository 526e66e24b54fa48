"""The Gradio app: fill-mask, attention, the masking playground, training curves, (when a
fine-tuned classifier is around) classification and (when a contrastive SimCSE encoder is around)
sentence similarity and nearest neighbours, for the models under a runs directory.

`build_app` only builds the Blocks (tests and notebooks launch it themselves); `launch` is what
`workbench app` calls. Design choices:
- The model picker lists runs under `runs_dir` plus the model given at start; any other path typed
  into it (or sent through the API) is refused, so a page visitor cannot make the server read
  arbitrary directories.
- Models are loaded once per checkpoint and kept (a small LRU), never per request; so are the
  embeddings of the nearest-neighbour corpus sample (once per encoder).
- Every handler turns bad input (no mask, empty or too long text, unloadable checkpoint) into a
  readable message in the page and a toast; the server keeps serving.
- The raw results are also exposed as API endpoints (/fill_mask, /attention, /training_plot,
  /similarity, /neighbours, ...) for gradio_client and scripts.

Layout: `core` (shared state: runs directory, start model, model cache, the picker's rules), one
module per tab (`fill_mask`, `attention`, `playground`, `curves`, `classify`, `similarity`: the
tab's handlers as a mixin of `Workbench`, its components and its events) and `shell` (the page:
picker, tabs, cross-tab events, `launch`). A new tab is a new module wired in `shell.build_app`.
Parts of tabs: `probes_view` (predictions through training, in the Training tab) and `checkpoints`
(the snapshot/checkpoint picker the Fill-mask and Attention tabs share).
"""

from __future__ import annotations

from .core import DEFAULT_MODEL, ModelCache
from .shell import Workbench, build_app, launch

__all__ = ["DEFAULT_MODEL", "ModelCache", "Workbench", "build_app", "launch"]
