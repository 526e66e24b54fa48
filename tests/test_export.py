"""The model card's recipe rows, from hand-built run records."""

from workbench.export import _recipe_rows

SUMMARY = {"val_mask_accuracy": 0.339, "val_mask_loss": 3.783, "cloze_top1": 0.449, "cloze_top5": 0.612,
           "cloze_probes": 49}


def _model(**over):
    return {"architecture": "modernbert", "local_window": None, "global_every": 4, "output_bias": "unigram",
            "embedding_init": "ppmi-svd", **over}


def test_card_names_the_global_layers_the_model_has():
    assert _recipe_rows(_model(), SUMMARY, layers=4)[-1] == (
        "| architecture | modernbert, local attention window 8 below every 4-th (global) layer; "
        "initialised from the corpus: output bias unigram, embeddings ppmi-svd |")
    # tiny: 2 layers and a global layer every 4th means none is global; the card must not promise one
    assert _recipe_rows(_model(), SUMMARY, layers=2)[-1] == (
        "| architecture | modernbert, local attention window 8 in all 2 layers (no global layer); "
        "initialised from the corpus: output bias unigram, embeddings ppmi-svd |")
    assert _recipe_rows(_model(local_window=0), SUMMARY, layers=2)[-1] == (
        "| architecture | modernbert; initialised from the corpus: output bias unigram, embeddings ppmi-svd |")


def test_card_reports_mask_only_accuracy_and_cloze():
    rows = _recipe_rows(_model(), SUMMARY, layers=4)
    assert rows[0] == ("| [MASK]-only validation (15% of positions, all replaced by [MASK]) | accuracy 33.9%, "
                       "loss 3.783 |")
    assert rows[1] == "| cloze probes (assets/probes, 49 answerable) | top-1 44.9%, top-5 61.2% |"
