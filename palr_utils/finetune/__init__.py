"""Notebook 04's PALR_v1 / PALR_v2 fine-tuning: the instruction examples and TRL's SFTTrainer with LoRA."""
