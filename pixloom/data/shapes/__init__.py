"""The shapes world (docs SHAPES.md): procedural scenes, their renderer, captions, dataset."""
