"""In-context linear regression with a linear Transformer (Ahn et al., ICLR 2024).

Launch (one run, trainloop):
  python scripts/train.py --config=configs/linear_regression.py:setting=1,optimizer=adam --workdir=runs/ltf_s1_adam
Expected: eval/mse falls from about 5 (= E y²) to about 2e-3 within ~1000 steps (L=3, Adam lr 0.02,
clip 1, B=1000). With `layers=1` it converges to the one-layer optimum 30/26 = 1.1538.
Many runs at once (seeds x learning rates x optimisers in one compiled program):
  python scripts/reproduce_linear_tf.py --figure=loss_curves --quick

Args (all optional): setting=1|2|3|sphere|nonisotropic|nonlinear, layers, heads, optimizer=adam|sgdm|sgd,
lr (default: the authors' README table for the setting/optimizer), clip (default 1; 0.1 for sphere), seed,
parameterization=sparse|full|p0 (nonlinear default full), attention=linear|softmax|softmax_clean,
steps, batch (default 1000; 2000 nonlinear), d (5), n (20; 5 for setting 2), init_std (0.05; 0.1 nonlinear).
"""

from linear_tf.data import DEFAULT_N, SETTINGS
from linear_tf.hparams import OPTIMIZERS, default_clip, default_lr, set_optimizer
from linear_tf.task import specs_from_config
from trainloop.config_util import ConfigError, check_choice, parse_arg
from trainloop.defaults import base_config


def get_config(arg=None):
    a = parse_arg(
        arg,
        setting="1",
        layers=3,
        heads=1,
        optimizer="adam",
        lr=None,
        clip=None,
        seed=0,
        parameterization=None,
        attention="linear",
        steps=10000,
        batch=None,
        d=5,
        n=None,
        init_std=None,
    )
    setting = check_choice("setting", str(a.setting), SETTINGS)
    optimizer = check_choice("optimizer", a.optimizer, OPTIMIZERS)
    nonlinear = setting == "nonlinear"
    for name in ("layers", "heads", "steps", "d"):
        if int(a[name]) < 1:
            raise ConfigError(f"Invalid {name}={a[name]!r}: must be an integer >= 1.")
    if a.n is not None and int(a.n) < 1:
        raise ConfigError(f"Invalid n={a.n!r}: must be an integer >= 1.")

    c = base_config()
    c.task = "linear_regression"
    c.seed = int(a.seed)
    c.num_steps = int(a.steps)
    c.batch_size = int(a.batch if a.batch is not None else (2000 if nonlinear else 1000))
    c.log_every = 50
    c.eval_every = 50
    c.checkpoint_every = 0

    n = int(a.n) if a.n is not None else DEFAULT_N[setting]
    c.data = dict(setting=setting, d=int(a.d), n=n, eval_batch_size=c.batch_size)
    c.model = dict(
        layers=int(a.layers),
        heads=int(a.heads),
        parameterization=a.parameterization or ("full" if nonlinear else "sparse"),
        attention=a.attention,
        init_std=float(a.init_std if a.init_std is not None else (0.1 if nonlinear else 0.05)),
        embed=nonlinear,
    )
    lr = float(a.lr) if a.lr is not None else default_lr(setting, optimizer)
    clip = float(a.clip) if a.clip is not None else default_clip(setting)
    set_optimizer(c.optimizer, optimizer, lr, clip)
    specs_from_config(c)  # validates the model/data choices now, so bad input fails at config time
    return c
