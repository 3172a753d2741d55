"""Flax (linen) models used by the experiments: an MLP, a CNN, a small VGG and a small ViT for image classification, and a BERT
encoder with all-MiniLM-L6-v2's pretrained weights (``sentence_embeddings``, ``load_minilm``)."""
from lrjax.models.bert import Bert, BertConfig, SentenceClassifier, SentenceEncoder, load_minilm, sentence_embeddings
from lrjax.models.classifiers import CNN, MLP, VGG, ViT, make

__all__ = ["Bert", "BertConfig", "CNN", "MLP", "SentenceClassifier", "SentenceEncoder", "VGG", "ViT", "load_minilm",
           "make", "sentence_embeddings"]
