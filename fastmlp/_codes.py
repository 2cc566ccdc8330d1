"""Integer codes shared by the kernels and the Python layer.

Kernels branch on these codes once per layer (outside the hot loops), so a
new activation, output head or optimizer is one more code and one more
branch, never a new compiled function per configuration.
"""

# Hidden-layer activations. Codes are stable: they may be stored in arrays.
IDENTITY = 0
LOGISTIC = 1
TANH = 2
RELU = 3

ACTIVATIONS = {"identity": IDENTITY, "logistic": LOGISTIC, "tanh": TANH, "relu": RELU}

# Output-layer activations, never a hidden layer's: the forward kernels apply
# the output head's function through the same ``activate`` as the hidden
# layers', in their parallel tasks.
SOFTMAX = 4
EXP = 5

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

# Stochastic solvers.
SGD = 0
ADAM = 1
SOLVERS = {"sgd": SGD, "adam": ADAM}
# The gradient kernels apply the optimizer step to each block of weights as
# soon as its gradient is written; NO_STEP asks for the gradient alone
# (L-BFGS, which hands the gradient to scipy).
NO_STEP = -1

# Slots of the ``hyper`` array handed to the update kernels. It has the
# parameter dtype so that float32 kernels never promote to float64 (Numba
# types ``float32 * Python float`` as float64).
H_LR = 0  # learning rate (SGD: current; Adam: learning_rate_init)
H_MOMENTUM = 1
H_BETA1 = 2
H_ONE_MINUS_BETA1 = 3
H_BETA2 = 4
H_ONE_MINUS_BETA2 = 5
H_EPSILON = 6
H_ALPHA = 7  # L2 penalty
H_LOG_EPS = 8  # clip bound of the log-loss, finfo(dtype).eps
H_LR_T = 9  # scratch: Adam's bias-corrected step size, in the dtype
N_HYPER = 10

