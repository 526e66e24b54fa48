"""The Pretraining Workbench: raw text -> tokenizer -> masked batches -> BERT -> metrics and plots.

Modules, in the order data flows through them:
  config      typed dataclasses with presets, shared by the CLI, the notebooks and the app
  data        corpora: the embedded default, local files, hub datasets; cleaning, splits, statistics
  tokenizer   train / load a fast tokenizer; fertility and unknown rate
  masking     MLM corruption (token, whole-word, span) and a human-readable view of it
  model       transformers models from size presets
  training    the generic engine: accelerate, schedule, metrics.jsonl, atomic checkpoints, resume
  pretrain    masked-language-model pre-training on top of the engine
  tasks       labelled downstream tasks that install offline
  finetune    sequence classification on top of the engine; the downstream benchmark
  inspection  fill-mask, attention, embeddings of a trained model
  plots       plotly figures
  app         the Gradio app
  cli         the `workbench` command
"""

__version__ = "0.1.0"
