"""File formats lrjax writes and reads, in one place: ``files`` (atomic JSON/text, the directory lock),
``checkpoint`` (checksum-verified training checkpoints), ``adapters`` (a bound model's adapter), ``peft``
(Hugging Face PEFT LoRA export and import)."""
