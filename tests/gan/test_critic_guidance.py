"""The gan task's critic guidance (a frozen image-text critic's loss joins G's) and its
fine-tuning from a trained generator (init_from)."""

import pytest
import torch

from pixloom.configs import config_from_dict
from pixloom.data.registry import DatasetInfo
from pixloom.errors import CheckpointError, InvalidValue
from pixloom.io.checkpoint import export_checkpoint, save_checkpoint
from pixloom.models.registry import build_model
from pixloom.text.builtin import build_vocabulary
from pixloom.training.tasks.gan import GanTask, GanTaskOptions

VOCAB = build_vocabulary(["a red circle", "two blue squares", "a green star above a square"])
SPEC = {"name": "builtin", "vocab": VOCAB, "dim": 16, "layers": 1, "heads": 2, "max_length": 12}
DCGAN = {"resolution": 16, "z_dim": 8, "width": 4, "max_width": 8, "text_encoder": SPEC}
CRITIC = {"text_encoder": SPEC, "resolution": 16, "widths": [8, 8], "dim": 16, "depth": 1,
          "heads": 2, "grounding": True}  # fmt: skip
INFO = DatasetInfo(name="shapes", resolution=16, has_captions=True)
BATCH = {"image": torch.zeros(4, 3, 16, 16),
         "caption": ["a red circle", "two blue squares", "a green star", "a red square"]}  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny dcgan, the same exported with a critic inside, and a critic: their directories."""
    root = tmp_path_factory.mktemp("guided")
    torch.manual_seed(0)
    generator = build_model("dcgan", DCGAN)
    save_checkpoint(root / "gan", config={"family": "dcgan", "model": DCGAN},
                    weights=generator.state_dict())  # fmt: skip
    critic = build_model("critic", CRITIC)
    save_checkpoint(root / "critic", config={"family": "critic", "model": CRITIC},
                    weights=critic.state_dict())  # fmt: skip
    judged = export_checkpoint(root / "gan", root / "gan-judged", critic=root / "critic",
                               dtype="float32")  # fmt: skip
    return {"gan": root / "gan", "judged": judged, "critic": root / "critic",
            "weights": generator.state_dict()}  # fmt: skip


def _task(**options):
    fields = {"model": "dcgan", "text_encoder": "builtin", "vocab_captions": 50, **options}
    return GanTask(config_from_dict(GanTaskOptions, fields), INFO)


def test_init_from_keeps_the_trained_generator_and_drops_its_judge(saved):
    for source in ("gan", "judged"):
        task = _task(init_from=str(saved[source]))
        weights = task.generator.state_dict()
        assert weights.keys() == saved["weights"].keys()
        assert all(torch.equal(weights[k], saved["weights"][k]) for k in weights)
        assert task.generator.critic is None and task.generator.training
        assert task.export_config()["model"]["critic"] == {}
        assert task.export_config()["model"]["text_encoder"]["vocab"] == VOCAB
        assert task.critic is None


def test_critic_loss_joins_the_generator_loss_with_its_weight(saved):
    """With the same discriminator and latents, the G loss grows by weight x the critic's
    softplus(-logit) on the fakes; the generator gets its gradient, the critic none."""
    losses = {}
    for weight in (None, 1.0, 3.0):
        options = {} if weight is None else {"critic": str(saved["critic"]),
                                             "critic_weight": weight}  # fmt: skip
        torch.manual_seed(0)
        task = _task(init_from=str(saved["gan"]), **options)
        torch.manual_seed(1)
        loss, metrics = task.loss("g", BATCH, 0)
        losses[weight] = loss
        assert ("critic" in metrics) == (weight is not None)
    term = losses[1.0] - losses[None]
    assert term > 0
    torch.testing.assert_close(losses[3.0] - losses[None], 3 * term)
    losses[3.0].backward()
    assert all(p.grad is None for p in task.critic.parameters())
    grads = [p.grad for p in task.generator.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    assert 0 <= metrics["critic"] <= 1 and not task.critic.training


def test_bad_init_from_and_critic_are_refused_by_name(saved, tmp_path):
    with pytest.raises(
        InvalidValue, match=r"task_options\.init_from.*a 'dcgan' checkpoint.*critic"
    ):
        _task(init_from=str(saved["critic"]))
    with pytest.raises(InvalidValue, match=r"task_options\.critic.*a 'critic' checkpoint.*dcgan"):
        _task(critic=str(saved["gan"]))
    with pytest.raises(CheckpointError, match=r"task_options\.init_from"):
        _task(init_from=str(tmp_path / "missing"))
    with pytest.raises(CheckpointError, match=r"task_options\.critic"):
        _task(critic=str(tmp_path / "missing"))
    with pytest.raises(InvalidValue, match=r"task_options\.model_config.*empty"):
        config_from_dict(GanTaskOptions, {"init_from": "x", "model_config": {"width": 8}})
    with pytest.raises(InvalidValue, match=r"task_options\.critic_weight"):
        config_from_dict(GanTaskOptions, {"critic": "x", "critic_weight": 0})
    with pytest.raises(InvalidValue, match=r"task_options\.text_encoder.*'builtin', the encoder"):
        _task(init_from=str(saved["gan"]), text_encoder="none")
    with pytest.raises(InvalidValue, match=r"task_options\.init_from.*'stylegan'"):
        _task(init_from=str(saved["gan"]), model="stylegan")
    with pytest.raises(InvalidValue, match=r"resolution.*16, the side"):
        options = {"model": "dcgan", "init_from": str(saved["gan"]), "text_encoder": "builtin"}
        GanTask(config_from_dict(GanTaskOptions, options),
                DatasetInfo(name="shapes", resolution=32, has_captions=True))  # fmt: skip
    with pytest.raises(InvalidValue, match=r"task_options\.critic.*unconditional"):
        _task(text_encoder="none", critic=str(saved["critic"]))


def test_a_run_resumes_only_with_the_critic_it_started_with(saved, tmp_path):
    task = _task(critic=str(saved["critic"]))
    state = task.state_dict()
    assert state["critic"] == task.critic_sha256
    task.load_state_dict(state)  # the same critic
    other = build_model("critic", CRITIC)
    save_checkpoint(tmp_path / "other", config={"family": "critic", "model": CRITIC},
                    weights=other.state_dict())  # fmt: skip
    with pytest.raises(CheckpointError, match="started with critic sha256"):
        _task(critic=str(tmp_path / "other")).load_state_dict(state)
    with pytest.raises(CheckpointError, match="started with critic sha256 None"):
        _task(critic=str(saved["critic"])).load_state_dict({"preview_prompts": []})
    _task().load_state_dict({"preview_prompts": ["a red circle"]})  # runs before critics
