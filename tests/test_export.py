"""The model card's recipe rows, from hand-built run records."""

from workbench.export import _recipe_rows, _size_name

SUMMARY = {"val_mask_accuracy": 0.339, "val_mask_loss": 3.783, "cloze_top1": 0.449, "cloze_top5": 0.612,
           "cloze_probes": 49}


def _model(**over):
    return {"architecture": "modernbert", "local_window": None, "global_every": 4, "output_bias": "unigram",
            "embedding_init": "ppmi-svd", **over}


def test_card_names_the_global_layers_the_model_has():
    assert _recipe_rows(_model(), SUMMARY, layers=4)[-1] == (
        "| architecture | modernbert, local attention window 8; global attention in layer 4 of 4; "
        "initialised from the corpus: output bias unigram, embeddings ppmi-svd |")
    # the shipped model: 3 layers, the top one global (counted from the bottom, as the model builds them)
    assert _recipe_rows(_model(global_every=3), SUMMARY, layers=3)[-1] == (
        "| architecture | modernbert, local attention window 8; global attention in layer 3 of 3; "
        "initialised from the corpus: output bias unigram, embeddings ppmi-svd |")
    assert _recipe_rows(_model(global_every=2, local_window=16), SUMMARY, layers=5)[-1] == (
        "| architecture | modernbert, local attention window 16; global attention in layers 2, 4 of 5; "
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


def test_card_names_the_size_by_shape_once_the_preset_is_changed():
    hf = {"num_hidden_layers": 3, "hidden_size": 192}
    preset_shape = {"size": "tiny", "layers": None, "hidden": None, "heads": None, "intermediate": None}
    assert _size_name(preset_shape, hf) == "tiny"
    assert _size_name({"size": "tiny", "layers": 3, "hidden": 192, "heads": 3, "intermediate": None}, hf) == (
        "3-layer, 192-wide")
