"""Docstring fragments shared by MLPClassifier and MLPRegressor.

The two estimators' docstrings are assembled from these pieces in
``_estimators``, as scikit-learn's are: the parameters they share, the
fitted attributes (``{score_name}`` names each one's validation score) and
the notes on what fastmlp changes.
"""

_PARAMETERS_DOC = """
    hidden_layer_sizes : array-like of shape(n_layers - 2,), default=(100,)
        The ith element represents the number of neurons in the ith
        hidden layer.

    activation : {'identity', 'logistic', 'tanh', 'relu', 'gelu', 'leaky_relu', \
            'elu', 'silu', 'softplus'} or list of them, default='relu'
        Activation function for the hidden layer; a list or tuple gives one
        per hidden layer (fastmlp only), in order.

        - 'identity', no-op activation, useful to implement linear bottleneck,
          returns f(x) = x

        - 'logistic', the logistic sigmoid function,
          returns f(x) = 1 / (1 + exp(-x)).

        - 'tanh', the hyperbolic tan function,
          returns f(x) = tanh(x).

        - 'relu', the rectified linear unit function,
          returns f(x) = max(0, x)

        - 'gelu', the Gaussian error linear unit (exact form, PyTorch's
          default), returns f(x) = x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt(2))).

        - 'leaky_relu', returns f(x) = x where x > 0, else 0.01 * x
          (PyTorch's default slope).

        - 'elu', returns f(x) = x where x > 0, else exp(x) - 1 (alpha 1).

        - 'silu' (swish), returns f(x) = x / (1 + exp(-x)).

        - 'softplus', returns f(x) = log(1 + exp(x)), computed without
          overflow.

        The last five, and a list of different names, are fastmlp's only:
        :meth:`to_sklearn` refuses such a model, :func:`fastmlp.to_onnx`
        exports it.

    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        The solver for weight optimization.

        - 'lbfgs' is an optimizer in the family of quasi-Newton methods
          (scipy's L-BFGS-B, run directly on the flat parameter buffer).

        - 'sgd' refers to stochastic gradient descent.

        - 'adam' refers to a stochastic gradient-based optimizer proposed
          by Kingma, Diederik, and Jimmy Ba

    alpha : float, default=0.0001
        Strength of the L2 regularization term. The L2 regularization term
        is divided by the sample size when added to the loss.

    batch_size : int, default='auto'
        Size of minibatches for stochastic optimizers.
        If the solver is 'lbfgs', the model will not use minibatch.
        When set to "auto", `batch_size=min(200, n_samples)`.

    learning_rate : {'constant', 'invscaling', 'adaptive', 'cosine', 'linear'}, \
            default='constant'
        Learning rate schedule for weight updates. 'constant', 'invscaling'
        and 'adaptive' are only used when ``solver='sgd'``; 'cosine' and
        'linear' (fastmlp only) when ``solver='sgd'`` or ``'adam'``.

        - 'constant' is a constant learning rate given by
          'learning_rate_init'.

        - 'invscaling' gradually decreases the learning rate at each
          time step 't' using an inverse scaling exponent of 'power_t'.
          effective_learning_rate = learning_rate_init / pow(t, power_t)

        - 'adaptive' keeps the learning rate constant to
          'learning_rate_init' as long as training loss keeps decreasing.
          Each time two consecutive epochs fail to decrease training loss by at
          least tol, or fail to increase validation score by at least tol if
          'early_stopping' is on, the current learning rate is divided by 5.

        - 'cosine' decays the rate from 'learning_rate_init' to 0 over
          'max_iter' epochs, updated at every mini-batch:
          ``learning_rate_init * (1 + cos(pi * p)) / 2``, ``p`` the share of
          the epochs after the warm-up (``lr_warmup``) done; 0 from then on.
          ``history_`` records the rate each epoch reached. ``fit`` starts
          the schedule anew; each ``partial_fit`` call is one more epoch of
          it, so after 'max_iter' calls the rate stays 0.

        - 'linear' decays it the same way, by ``1 - p``.

    learning_rate_init : float, default=0.001
        The initial learning rate used. It controls the step-size
        in updating the weights. Only used when solver='sgd' or 'adam'.

    power_t : float, default=0.5
        The exponent for inverse scaling learning rate.
        It is used in updating effective learning rate when the learning_rate
        is set to 'invscaling'. Only used when solver='sgd'.

    max_iter : int, default=200
        Maximum number of iterations. The solver iterates until convergence
        (determined by 'tol') or this number of iterations. For stochastic
        solvers ('sgd', 'adam'), note that this determines the number of epochs
        (how many times each data point will be used), not the number of
        gradient steps.

    shuffle : bool, default=True
        Whether to shuffle samples in each iteration. Only used when
        solver='sgd' or 'adam'.

    random_state : int, RandomState instance, default=None
        Determines random number generation for weights and bias
        initialization, train-test split if early stopping is used, and batch
        sampling when solver='sgd' or 'adam'. The draws are scikit-learn's, so
        the same seed gives the same initial weights and sample order as
        scikit-learn, and the same model bit for bit run to run and for any
        number of threads.

    tol : float, default=1e-4
        Tolerance for the optimization. When the loss or score is not improving
        by at least ``tol`` for ``n_iter_no_change`` consecutive iterations,
        unless ``learning_rate`` is set to 'adaptive', convergence is
        considered to be reached and training stops.

    verbose : bool, default=False
        Whether to print progress messages to stdout.

    warm_start : bool, default=False
        When set to True, reuse the solution of the previous
        call to fit as initialization, otherwise, just erase the
        previous solution.

    momentum : float, default=0.9
        Momentum for gradient descent update. Should be between 0 and 1. Only
        used when solver='sgd'.

    nesterovs_momentum : bool, default=True
        Whether to use Nesterov's momentum. Only used when solver='sgd' and
        momentum > 0.

    early_stopping : bool, default=False
        Whether to use early stopping to terminate training when validation
        score is not improving. If set to true, it will automatically set
        aside ``validation_fraction`` of training data as validation and
        terminate training when validation score is not improving by at least
        ``tol`` for ``n_iter_no_change`` consecutive epochs. The split is
        stratified for single-output classification. The best weights are
        restored at the end. Only effective when solver='sgd' or 'adam'.

    validation_fraction : float, default=0.1
        The proportion of training data to set aside as validation set for
        early stopping. Must be between 0 and 1.
        Only used if early_stopping is True.

    beta_1 : float, default=0.9
        Exponential decay rate for estimates of first moment vector in adam,
        should be in [0, 1). Only used when solver='adam'.

    beta_2 : float, default=0.999
        Exponential decay rate for estimates of second moment vector in adam,
        should be in [0, 1). Only used when solver='adam'.

    epsilon : float, default=1e-8
        Value for numerical stability in adam. Only used when solver='adam'.

    n_iter_no_change : int, default=10
        Maximum number of epochs to not meet ``tol`` improvement.
        Only effective when solver='sgd' or 'adam'.

    max_fun : int, default=15000
        Only used when solver='lbfgs'. Maximum number of loss function calls.
        The solver iterates until convergence (determined by 'tol'), number
        of iterations reaches max_iter, or this number of loss function calls.
        Note that number of loss function calls will be greater than or equal
        to the number of iterations for the `MLPClassifier`.
"""

_CLASSIFIER_PARAMETERS_DOC = """
    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes (fastmlp only; scikit-learn's MLP has no
        such parameter), with the meaning scikit-learn's other classifiers
        give it: a dict ``{class_label: weight}``, or ``'balanced'`` for
        ``n_samples / (n_classes * np.bincount(y))`` over the ``y`` of the
        fit (:func:`sklearn.utils.class_weight.compute_class_weight`). Each
        sample's weight is multiplied by its class's, so the model is exactly
        the one ``sample_weight`` with those weights gives. Multilabel targets
        take None only; ``partial_fit`` takes a dict but not ``'balanced'``
        (one batch's class counts are not the data's).

    label_smoothing : float, default=0.0
        Smooths the targets the loss is taken against (fastmlp only):
        ``(1 - e) * y + e / K`` for a softmax output (multiclass, ``K``
        classes), as ``torch.nn.CrossEntropyLoss(label_smoothing=e)``, and
        ``(1 - e) * y + e / 2`` for logistic outputs (binary, multilabel).
        In [0, 1). ``loss_curve_`` reports the smoothed loss; scores and
        early stopping's validation accuracy use the true labels.
"""

_FASTMLP_PARAMETERS_DOC = """
    dropout : float or list of float, default=0.0
        Inverted dropout on the hidden layers' outputs while training
        (fastmlp only): each unit is zeroed with this probability and the
        kept ones scaled by ``1 / (1 - dropout)``; a list or tuple gives one
        rate in [0, 1) per hidden layer. Prediction uses every unit. The
        masks come from a counter-based hash of a seed drawn from
        ``random_state`` (drawn only when dropout is on), the epoch, the
        training sample, the layer and the unit, so a model is the same at
        any thread count and for dense or sparse input. Only for
        solver='sgd' or 'adam' (lbfgs: a ValueError).

    weight_decay : float, default=0.0
        Decoupled weight decay (Loshchilov and Hutter; fastmlp only): before
        each step the weights, not the biases, are scaled by
        ``1 - lr * weight_decay``, ``lr`` the step's learning rate before
        Adam's bias correction (``learning_rate_init`` for adam, the
        schedule's current rate for sgd), as ``torch.optim.AdamW`` does.
        With solver='adam' this is AdamW on scikit-learn's Adam step;
        with 'sgd' the same rule. Independent of ``alpha``, the L2 penalty
        in the loss. Only for solver='sgd' or 'adam' (lbfgs: a ValueError).

    lr_warmup : float, default=0.0
        Epochs (a fraction is allowed) of linear learning-rate warm-up from 0
        at the start of a fit (fastmlp only): the rate of each mini-batch is
        its schedule's times ``e / lr_warmup``, ``e`` the epochs done before
        it, until ``e`` reaches ``lr_warmup`` (Hugging Face's
        ``get_*_schedule_with_warmup`` rule, counted in epochs). Works with
        every ``learning_rate`` and both stochastic solvers; 'cosine' and
        'linear' decay after it. Only for solver='sgd' or 'adam'.

    clip_grad_norm : float, default=None
        Before each step, scale the whole gradient (every layer's weights
        and biases together) down to this L2 norm where it is longer, as
        ``torch.nn.utils.clip_grad_norm_`` does: ``grad *= max_norm /
        (norm + 1e-6)`` when that factor is below 1 (fastmlp only). None
        clips nothing. Only for solver='sgd' or 'adam'.

    n_threads : int, default=None
        Threads used by the compiled kernels in fit and predict (fastmlp
        only; scikit-learn has no such parameter). None uses every thread of
        Numba's pool (``NUMBA_NUM_THREADS``), capped by ``OMP_NUM_THREADS``
        when the environment sets it, as joblib and dask workers do; -1 is
        the same. A positive count is capped likewise. Small work (one
        forward pass of a batch under about a million multiply-adds) always
        runs on one thread, where synchronising threads costs more than it
        saves. Results are bit-identical for every thread count.

    progress_bar : bool, default=False
        Show a tqdm progress bar over epochs (L-BFGS: iterations) with the
        current loss and validation score (fastmlp only; needs ``tqdm``).
"""

_ATTRIBUTES_DOC = """
    loss_ : float
        The current loss computed with the loss function.

    best_loss_ : float or None
        The minimum loss reached by the solver throughout fitting.
        If `early_stopping=True`, this attribute is set to `None`. Refer to
        the `best_validation_score_` fitted attribute instead.
        Only accessible when solver='sgd' or 'adam'.

    loss_curve_ : list of shape (`n_iter_`,)
        Loss value evaluated at the end of each training step.
        The ith element in the list represents the loss at the ith iteration.
        Only accessible when solver='sgd' or 'adam'.

    validation_scores_ : list of shape (`n_iter_`,) or None
        The score at each iteration on a held-out validation set. The score
        reported is the {score_name}. Only available if `early_stopping=True`,
        otherwise the attribute is set to `None`.
        Only accessible when solver='sgd' or 'adam'.

    best_validation_score_ : float or None
        The best validation score (i.e. {score_name}) that triggered the
        early stopping. Only available if `early_stopping=True`, otherwise the
        attribute is set to `None`.
        Only accessible when solver='sgd' or 'adam'.

    t_ : int
        The number of training samples seen by the solver during fitting.
        Mathematically equals `n_iters * X.shape[0]`, it means
        `time_step` and it is used by optimizer's learning rate scheduler.

    coefs_ : list of shape (n_layers - 1,)
        The ith element in the list represents the weight matrix corresponding
        to layer i. All of them are views of one flat parameter buffer.

    intercepts_ : list of shape (n_layers - 1,)
        The ith element in the list represents the bias vector corresponding to
        layer i + 1.

    n_features_in_ : int
        Number of features seen during :term:`fit`.

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    n_iter_ : int
        The number of iterations the solver has run.

    n_layers_ : int
        Number of layers.

    n_outputs_ : int
        Number of outputs.

    out_activation_ : str
        Name of the output activation function.

    history_ : list of dict
        One record per epoch (L-BFGS: per iteration) with keys ``'epoch'``
        (counted across warm starts and partial_fit calls), ``'loss'``,
        ``'validation_score'`` and ``'validation_loss'`` (the loss function's
        value on the validation set, true targets, no L2 term; both None
        without early stopping), ``'learning_rate'`` (the base rate of the
        epoch; None for L-BFGS) and ``'seconds'`` (wall time of the epoch's
        training; a first fit compiles the kernels before the first epoch).
        fastmlp only.
"""

_NOTES_DOC = """
    Notes
    -----
    fastmlp is a drop-in replacement for scikit-learn's estimator of the same
    name: same parameters, defaults, fitted attributes, methods, warnings and
    errors. Training runs in Numba-compiled kernels over one flat buffer of
    all weights and biases; a whole epoch is one compiled call.

    float32 input is trained and predicted in float32 end to end, for every
    solver (scikit-learn's 'lbfgs' solver returns float64 weights for float32
    input; fastmlp keeps them float32). Other numeric input is cast to
    float64.

    Use :meth:`from_sklearn` and :meth:`to_sklearn` to convert fitted models
    in either direction; predictions agree to rounding both ways.
"""
