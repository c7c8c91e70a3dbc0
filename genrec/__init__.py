"""genrec: multimodal generative recommendation with adapter-tuned language models (P5/VIP5 line).

Tensor shape letters used in comments across the package:
B batch, T sequence length, D backbone hidden size, C CLIP embedding size,
K visual tokens per image, N image slots in a batch, V vocabulary size.
"""
__version__ = "0.1.0"
