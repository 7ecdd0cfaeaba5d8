"""Networks only (nn.Module): tensors in, tensors out. One file per family."""
