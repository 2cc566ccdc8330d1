"""Every integer code of fastmlp, and the option tables built from them.

Kernels branch on these codes once per layer (outside the hot loops), so a
new activation, output head or optimizer is one more code and one more
branch, never a new compiled function per configuration. The estimators'
option tables (name -> code) and their parameter constraints are built
from the tables here. Codes are stable: they may be stored in arrays.
"""

# Activations. The hidden ones have a name in ACTIVATIONS; SOFTMAX and EXP
# are output functions only (an output head's, see HEAD_ACTIVATIONS).
IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3
SOFTMAX = 4
EXP = 5
GELU = 6
LEAKY_RELU = 7
ELU = 8
SILU = 9
SOFTPLUS = 10

ACTIVATIONS = {"identity": IDENTITY, "logistic": LOGISTIC, "tanh": TANH, "relu": RELU,
               "gelu": GELU, "leaky_relu": LEAKY_RELU, "elu": ELU, "silu": SILU,
               "softplus": SOFTPLUS}

# The activations whose derivative reads the pre-activation z (not only
# the output): the training kernels keep z of their layers in the work
# bundle's ``pre`` buffer, which is empty when no layer needs it.
NEEDS_PRE = frozenset({GELU, SILU})
# The same as a flag per activation code (a tuple the kernels index).
PRE_FLAGS = tuple(code in NEEDS_PRE
                  for code in range(max(*ACTIVATIONS.values(), SOFTMAX, EXP) + 1))

# Output heads: an (output activation, loss) pair whose output delta is
# simply ``out - y`` (times the sample weight).
HEAD_SOFTMAX = 0  # softmax + categorical cross-entropy (multiclass)
HEAD_LOGISTIC = 1  # logistic + binary cross-entropy (binary, multilabel)
HEAD_IDENTITY = 2  # identity + half squared error
HEAD_EXP = 3  # exp + half Poisson deviance

# scikit-learn's ``out_activation_`` name of each head.
HEAD_NAMES = {HEAD_SOFTMAX: "softmax", HEAD_LOGISTIC: "logistic",
              HEAD_IDENTITY: "identity", HEAD_EXP: "exp"}
HEADS = {name: code for code, name in HEAD_NAMES.items()}
# The activation code of each head's output function, indexed by head code
# (a tuple: the compiled kernels index it too).
_HEAD_ACTIVATION = {HEAD_SOFTMAX: SOFTMAX, HEAD_LOGISTIC: LOGISTIC,
                    HEAD_IDENTITY: IDENTITY, HEAD_EXP: EXP}
HEAD_ACTIVATIONS = tuple(_HEAD_ACTIVATION[h] for h in range(len(_HEAD_ACTIVATION)))

# Solvers. The stochastic ones step inside the gradient kernels; NO_STEP
# asks those kernels for the gradient alone (L-BFGS, which hands the
# gradient to scipy).
SGD = 0
ADAM = 1
NO_STEP = -1
# The ``solver`` options: L-BFGS is scipy's, on the kernels' gradient alone.
SOLVERS = {"lbfgs": NO_STEP, "sgd": SGD, "adam": ADAM}
STOCHASTIC_SOLVERS = tuple(name for name, code in SOLVERS.items() if code != NO_STEP)

# Slots of the ``hyper`` array of the parameter bundle. It has the
# parameter dtype so that float32 kernels never promote to float64 (Numba
# types ``float32 * Python float`` as float64).
H_LR = 0  # the epoch's learning rate (SGD's schedules; Adam: learning_rate_init)
H_MOMENTUM = 1
H_BETA1 = 2
H_ONE_MINUS_BETA1 = 3
H_BETA2 = 4
H_ONE_MINUS_BETA2 = 5
H_EPSILON = 6
H_ALPHA = 7  # L2 penalty
H_LOG_EPS = 8  # clip bound of the log-loss, finfo(dtype).eps
H_STEP_LR = 9  # this step's learning rate, set by _optim.begin_step
H_WEIGHT_DECAY = 10  # decoupled weight decay (0: none)
H_BASE_LR = 11  # this step's rate before Adam's bias correction (begin_step)
H_CLIP = 12  # the gradient's largest L2 norm (0: no clipping)
N_HYPER = 13

# Slots of the float64 ``hyper64`` array: what a step's learning rate is
# computed from, in float64 as scikit-learn computes it.
H64_LR_INIT = 0
H64_BETA1 = 1
H64_BETA2 = 2
# A per-step schedule (begin_step): its code, its warm-up and horizon in
# epochs, and where this epoch starts (epochs done, the step count then, the
# epoch's steps); begin_step writes the step's base rate to H64_RATE.
H64_SCHEDULE = 3
H64_WARMUP = 4
H64_HORIZON = 5
H64_EPOCH0 = 6
H64_STEP0 = 7
H64_EPOCH_STEPS = 8
H64_RATE = 9
H64_DROP_SEED = 10  # dropout's seed (an integer below 2**53)
N_HYPER64 = 11

# Learning-rate schedules applied at every step (begin_step), for SGD and
# Adam; scikit-learn's own ('constant', 'invscaling', 'adaptive') act per
# epoch, from Python, and are NO_SCHEDULE here.
NO_SCHEDULE = 0
COSINE = 1
LINEAR = 2
STEP_SCHEDULES = {"cosine": COSINE, "linear": LINEAR}
# The ``learning_rate`` options.
LEARNING_RATES = ("constant", "invscaling", "adaptive", *STEP_SCHEDULES)

# Which part of a layer's parameters an optimizer step covers.
WEIGHTS = 0
BIASES = 1

# Operations of a layer task (_linalg._layer_task, _linalg._sparse_task).
FORWARD = 0  # out = act(X @ W + b)
BACKWARD = 1  # out = (D @ W.T) * act'(z of the layer below)
GRADIENT = 2  # the gradient of W and b by rows of W, then the step
SHARE = 3  # a row task's share of the gradient (split by batch rows)
COMBINE = 4  # the sum of the shares, then the step
SPARSE_FORWARD = 5  # FORWARD from a CSR input
SPARSE_GRADIENT = 6  # GRADIENT from the same input as CSC

# Phases of _kernels.network.
PREDICT = 0  # the forward pass
ROWS = 1  # forward pass, output head (loss and deltas), every layer's deltas
STEPS = 2  # every layer's weight gradient and optimizer step

# Columns of the shape bundle's offsets table (one row per layer).
OFF_W = 0  # the layer's weights in the parameter buffers
OFF_B = 1  # its biases
OFF_A = 2  # its (rows, units) block in the work buffers
