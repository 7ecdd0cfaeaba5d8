"""Can a GAN generator learn from the critic alone? Gradient ascent on the critic's score.

    python -m benchmarks.critic_ascent --out /tmp/ascent            # then:
    pixloom eval alignment --prompts single --model /tmp/ascent     # what the oracle sees

The generator of --model (a GAN; its critic, if it holds one, is dropped) is trained for
--steps on the critic's match loss alone, softplus(-logit) of its fakes against training
captions, with no discriminator. Every 50 steps it prints the loss and the share of fakes the
critic accepts (logit > 0), then saves the generator to --out. If the critic's acceptance
rises while the oracle's accuracy falls, the critic's gradient draws what fools it (an
adversarial example), not what the caption says: the probe behind the `critic` option of the
gan task (docs/models/shapes-t2i.md). --augment makes the critic read each fake shifted by up
to 2 pixels (wrapping) with Gaussian noise (sigma 0.1), which such patterns rarely survive.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks.critic_accuracy import load_critic


def main() -> None:
    """Train, print the log, save."""
    from pixloom.configs import config_to_dict
    from pixloom.data.registry import DatasetInfo, load_dataset
    from pixloom.io.checkpoint import load_checkpoint, save_checkpoint
    from pixloom.models.loading import resolve_checkpoint
    from pixloom.text.registry import encode_captions, frozen_encoder
    from pixloom.training.tasks.gan import GanTaskOptions, trained_generator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes-t2i", help="a GAN generator")
    parser.add_argument("--critic", default="runs/shapes-critic-joint-ground/model")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    stored = load_checkpoint(resolve_checkpoint(args.model), weights=False)
    spec = stored.model_config["text_encoder"]
    options = GanTaskOptions(model=stored.family, text_encoder=spec["name"], init_from=args.model)
    info = DatasetInfo(name="shapes", resolution=stored.model_config["resolution"])
    generator, config = trained_generator(options, info)
    critic = load_critic(args.critic).requires_grad_(False)
    data = load_dataset("shapes", split="train", resolution=config.resolution)
    frozen = frozen_encoder(config.text_encoder)
    optimizer = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    losses, accepted = [], []
    for step in range(1, args.steps + 1):
        captions = [data.caption(i) for i in torch.randint(len(data), (args.batch,)).tolist()]
        cond = encode_captions(generator.text_encoder, frozen, captions, torch.device("cpu"))
        fake = generator(torch.randn(args.batch, config.z_dim), None, cond)
        if args.augment:
            shift = torch.randint(-2, 3, (2,)).tolist()
            fake = fake.roll(shift, dims=(2, 3)) + 0.1 * torch.randn_like(fake)
        logits = critic(fake, captions)
        loss = F.softplus(-logits).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        accepted.append(float((logits.detach() > 0).float().mean()))
        if step % 50 == 0 or step == args.steps:
            window = slice(-50, None)
            print(f"step {step}: critic loss {sum(losses[window]) / len(losses[window]):.3f}, "
                  f"accepted {sum(accepted[window]) / len(accepted[window]):.3f}", flush=True)  # fmt: skip
    generator.eval()
    save_checkpoint(args.out, config={"family": stored.family, "model": config_to_dict(config)},
                    weights=generator.state_dict())  # fmt: skip
    print(f"saved {args.out}: pixloom eval alignment --prompts single --model {args.out}")


if __name__ == "__main__":
    main()
