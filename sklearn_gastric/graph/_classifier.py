"""GCNSlideClassifier: slide classes from slide graphs (step 8)."""

from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNet

from ..utils._nets import PicklesNetByContent, build_net, fit_seeded, held_out_settings
from ..utils._sklearn_compat import Interval, StrOptions, _fit_context
from ..utils._validation import (
    check_device,
    check_labels,
    check_slide_graphs,
    stratified_split,
)
from ._confidence import (
    OOD_REPEATS,
    OODDensity,
    check_profiles,
    conformal_threshold,
    fit_temperature,
    out_of_fold_splits,
    training_profiles,
)
from ._gcn import GCN, READOUTS, GraphDataset, collate_graphs

__all__ = ["GCNSlideClassifier"]


class GCNSlideClassifier(ClassifierMixin, PicklesNetByContent, BaseEstimator):
    """Classify slides from their graphs with a graph convolutional network.

    Step 8 of the method. Each graph convolution computes
    ``H' = ReLU(D^-1/2 (A + I) D^-1/2 H W + b)`` (Kipf & Welling); after
    ``n_layers`` of them a readout turns the node vectors into one slide
    vector and a linear layer gives class logits, trained with the
    cross-entropy loss. ``predict_proba`` is the softmax of the logits.

    Training runs through a skorch :class:`~skorch.NeuralNet` (``net_``);
    graphs of different sizes are zero-padded to the largest graph of each
    mini-batch, with a node mask so padding takes no part in the
    convolutions or the readout.

    Parameters
    ----------
    hidden_units : int, default=64
        Width of every graph convolution.
    n_layers : int, default=2
        Number of graph convolutions.
    dropout : float, default=0.0
        Dropout probability before each convolution and the output layer.
    readout : {"mean_max", "mean", "max", "sum"}, default="mean_max"
        Node vectors to slide vector: the mean, the max, the sum over nodes,
        or the mean and the max concatenated.
    max_epochs : int, default=100
        Number of passes over the training graphs.
    lr : float, default=0.01
        Adam learning rate.
    weight_decay : float, default=0.0
        Adam weight decay (L2 penalty).
    batch_size : int, default=32
        Graphs per mini-batch.
    class_weight : "balanced" or None, default=None
        ``"balanced"`` weights the loss of each class by
        ``n_graphs / (n_classes * n_graphs_of_the_class)``.
    validation_fraction : float, default=0.0
        Fraction of the training graphs held out (stratified by label) to
        compute ``valid_loss`` each epoch, for early stopping. 0 trains on
        every graph for ``max_epochs``.
    patience : int or None, default=10
        With a validation split: stop when ``valid_loss`` has not improved
        for ``patience`` epochs and keep the best epoch's weights (skorch's
        :class:`~skorch.callbacks.EarlyStopping`). None never stops early.
    device : str, default="cpu"
        The torch device. A classifier trained on a GPU and unpickled where
        CUDA is absent moves its weights to the CPU (with skorch's
        ``DeviceWarning``).
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling and dropout. Two fits with the
        same integer give identical models on CPU. The global torch random
        state is left as it was.
    verbose : int, default=0
        Print skorch's per-epoch table when positive.
    calibration : {"temperature"} or None, default=None
        ``"temperature"`` rescales the logits by one temperature learnt on
        out-of-fold predictions of the training slides (``calibration_cv``
        extra fits of the network, each on the other folds), so that the
        probabilities match how often the class is right; the predicted
        class never changes. None keeps the network's own softmax.
    calibration_cv : int, default=5
        Folds of the training slides (stratified by label) for the
        temperature and for the out-of-distribution threshold.
    ood_false_alarm_rate : float, default=0.05
        Share of in-distribution slides the out-of-distribution flag may
        raise on: ``ood_threshold_`` is the split-conformal quantile of the
        out-of-fold training scores at ``1 - ood_false_alarm_rate``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels seen in ``fit``, sorted.
    n_node_features_ : int
        Length of a node's feature vector.
    feature_mean_ : ndarray of shape (``n_node_features_``,)
        Mean of each node feature over all nodes of the training graphs.
    feature_scale_ : ndarray of shape (``n_node_features_``,)
        Standard deviation of each node feature over the same nodes (1 where
        it is 0).
    net_ : skorch.NeuralNet
        The trained network; ``net_.module_`` is the :class:`GCN` and
        ``net_.history`` the training history.
    temperature_ : float
        The logits' temperature (1.0 without ``calibration``).
    ood_density_ : dict of ndarray
        Where the training slides lie, for :meth:`ood_score`: the mean
        (``"node_location"``) and the Ledoit-Wolf precision
        (``"node_precision"``) of their standardised nodes; when the graphs
        have profiles, the mean and standard deviation of the profiles
        (``"profile_mean"``, ``"profile_scale"``) and the mean and precision
        of the standardised profiles (``"profile_location"``,
        ``"profile_precision"``); and the median out-of-fold distance of
        each kind (``"scale"``).
    ood_threshold_ : float
        :meth:`ood_score` above which a slide is out of distribution
        (:meth:`is_out_of_distribution`).

    See Also
    --------
    PearsonGraphBuilder : Builds the graphs.
    GCN : The torch module.

    Notes
    -----
    Node features are standardised inside the classifier: ``fit`` learns
    ``feature_mean_`` and ``feature_scale_`` and every graph's features are
    transformed with them before entering the network, so no scaler is
    needed in front of it (features from a CNN have arbitrary scales).

    On CPU, ``fit`` and ``predict_proba`` run torch on a single intra-op
    thread (the previous setting is restored afterwards): the graphs are tiny
    (tens of nodes), so splitting each matrix product over threads costs
    more than it saves, up to ten times more on a busy machine. Parallelise
    over fits instead (e.g. ``GridSearchCV(n_jobs=...)``).

    The out-of-distribution score of a slide looks at two things: its
    nodes (the median over them of the squared Mahalanobis distance of
    their standardised features to the training nodes), and its profile
    (what all its tissue tiles look like, :func:`tile_profile`: a slide of
    stroma alone has ordinary top-K tiles but no gland anywhere). Each
    distance is divided by its median among the training slides and the
    score is the larger of the two. Its threshold is learnt without
    leaking: each fold's slides are scored against densities fitted on the
    other folds (the median over 10 splittings into ``calibration_cv``
    folds), and the threshold is the conformal quantile of those scores,
    so that on new slides like the training ones the flag is raised
    on at most ``ood_false_alarm_rate`` of them (exchangeability assumed).
    A flagged slide's class and probabilities describe a cohort it does not
    belong to; they are not to be trusted, however close to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gastric.graph import GCNSlideClassifier, SlideGraph
    >>> rng = np.random.default_rng(0)
    >>> def graph(label):
    ...     shift = 1.0 if label == "HGIN" else -1.0
    ...     return SlideGraph(rng.normal(shift, 1.0, (4, 3)), np.zeros((4, 4)))
    >>> y = ["HGIN", "negative"] * 10
    >>> graphs = [graph(label) for label in y]
    >>> clf = GCNSlideClassifier(hidden_units=8, max_epochs=20, random_state=0)
    >>> clf.fit(graphs, y).classes_
    array(['HGIN', 'negative'], dtype='<U8')
    >>> clf.score(graphs, y)
    1.0
    >>> clf.predict(graphs[:2])
    array(['HGIN', 'negative'], dtype='<U8')
    >>> clf.predict_proba(graphs[:2]).sum(axis=1)
    array([1., 1.])
    """

    _parameter_constraints: dict = {
        "hidden_units": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "readout": [StrOptions(set(READOUTS))],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "calibration": [StrOptions({"temperature"}), None],
        "calibration_cv": [Interval(Integral, 2, None, closed="left")],
        "ood_false_alarm_rate": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(
        self,
        hidden_units=64,
        n_layers=2,
        dropout=0.0,
        readout="mean_max",
        max_epochs=100,
        lr=0.01,
        weight_decay=0.0,
        batch_size=32,
        class_weight=None,
        validation_fraction=0.0,
        patience=10,
        device="cpu",
        random_state=None,
        verbose=0,
        calibration=None,
        calibration_cv=5,
        ood_false_alarm_rate=0.05,
    ):
        self.hidden_units = hidden_units
        self.n_layers = n_layers
        self.dropout = dropout
        self.readout = readout
        self.max_epochs = max_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.class_weight = class_weight
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.calibration = calibration
        self.calibration_cv = calibration_cv
        self.ood_false_alarm_rate = ood_false_alarm_rate

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the GCN on labelled slide graphs.

        Parameters
        ----------
        X : list of SlideGraph
            All with the same node feature length.
        y : array-like of shape (n_graphs,)
            Slide labels (strings welcome); at least two classes.

        Returns
        -------
        self : GCNSlideClassifier
        """
        check_device(self.device, type(self).__name__)
        graphs = check_slide_graphs(X, type(self).__name__)
        y = check_labels(y, len(graphs), type(self).__name__)
        self.classes_, y_encoded = np.unique(y, return_inverse=True)
        self.n_node_features_ = graphs[0].n_features
        _check_feature_length(graphs, self.n_node_features_, "the first graph has")

        nodes = np.concatenate([g.features for g in graphs]).astype(np.float64)
        self.feature_mean_ = nodes.mean(axis=0)
        scale = nodes.std(axis=0)
        self.feature_scale_ = np.where(scale > 0, scale, 1.0)

        weight = None
        if self.class_weight == "balanced":
            weight = torch.as_tensor(
                compute_class_weight(
                    "balanced", classes=np.arange(len(self.classes_)), y=y_encoded
                ),
                dtype=torch.float32,
            )
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        held_out = {}
        if self.validation_fraction > 0:
            held_out = held_out_settings(
                _StratifiedSplit(self.validation_fraction, seed), self.patience
            )

        def train(indices):
            net = self._make_net(
                module__in_features=self.n_node_features_,
                module__n_classes=len(self.classes_),
                criterion__weight=weight,
                **held_out,
            )
            subset = [graphs[i] for i in indices]
            return fit_seeded(net, self._dataset(subset, y_encoded[indices]), seed)

        self._fit_ood(graphs, y_encoded, seed)
        self.temperature_ = 1.0
        with _one_cpu_thread(self.device):
            if self.calibration == "temperature":
                folds = out_of_fold_splits(y_encoded, self.calibration_cv, seed)
                if not folds:
                    raise ValueError(
                        f"GCNSlideClassifier: calibration='temperature' needs "
                        f"out-of-fold predictions; {len(graphs)} graphs are too "
                        f"few for calibration_cv={self.calibration_cv}."
                    )
                logits = np.zeros((len(graphs), len(self.classes_)))
                for train_index, test_index in folds:
                    logits[test_index] = _logits(
                        train(train_index),
                        self._dataset([graphs[i] for i in test_index]),
                    )
                self.temperature_ = fit_temperature(logits, y_encoded)
            self.net_ = train(np.arange(len(graphs)))
        return self

    def _fit_ood(self, graphs, y_encoded, seed):
        """The training slides' densities (of nodes, and of profiles when
        every graph has one), and the conformal threshold of the
        out-of-fold slide scores."""
        nodes = [self._standardise(g.features) for g in graphs]
        profiles = training_profiles(graphs)

        def densities(indices):
            return OODDensity.fit(
                [nodes[i] for i in indices],
                None if profiles is None else profiles[indices],
            )

        def distances(density, indices):
            return density.distances(
                [nodes[i] for i in indices],
                None if profiles is None else profiles[indices],
            )

        # A few slides decide the threshold (the top 5 %), and which fold a
        # slide's neighbours fell in moves its distance: the median over
        # repeated splittings steadies both.
        repeats = []
        for repeat_seed in check_random_state(seed).randint(
            np.iinfo(np.int32).max, size=OOD_REPEATS
        ):
            folds = out_of_fold_splits(y_encoded, self.calibration_cv, repeat_seed)
            if not folds:
                break
            held_out = np.zeros((len(graphs), 1 if profiles is None else 2))
            for train_index, test_index in folds:
                held_out[test_index] = distances(densities(train_index), test_index)
            repeats.append(held_out)
        density = densities(np.arange(len(graphs)))
        if repeats:
            scores = np.median(repeats, axis=0)
        else:
            # Too few slides to hold any out: in-sample distances, which
            # underestimate the out-of-sample ones.
            scores = distances(density, np.arange(len(graphs)))
        # Each distance over its median among training slides, so that the
        # larger of the two says which is the more unusual.
        median = np.median(scores, axis=0)
        density.scale = np.where(median > 0, median, 1.0)
        self.ood_density_ = density.to_arrays()
        self.ood_threshold_ = conformal_threshold(
            (scores / density.scale).max(axis=1), self.ood_false_alarm_rate
        )

    def _standardise(self, features):
        return (features - self.feature_mean_) / self.feature_scale_

    def _make_net(self, **overrides):
        """The skorch net of this classifier, untrained: ``fit`` trains it,
        and :func:`~sklearn_gastric.load_model` rebuilds it with the stored
        net parameters as ``overrides``."""
        params = {
            "module": GCN,
            "module__hidden_units": self.hidden_units,
            "module__n_layers": self.n_layers,
            "module__dropout": self.dropout,
            "module__readout": self.readout,
            "criterion": torch.nn.CrossEntropyLoss,
            "optimizer__weight_decay": self.weight_decay,
            "iterator_train__collate_fn": collate_graphs,
            "iterator_valid__collate_fn": collate_graphs,
        }
        return build_net(NeuralNet, self, params, overrides)

    def _dataset(self, graphs, labels=None):
        features = [self._standardise(g.features).astype(np.float32) for g in graphs]
        return GraphDataset(features, [g.adjacency for g in graphs], labels)

    def predict_proba(self, X):
        """Class probabilities of each slide.

        Parameters
        ----------
        X : list of SlideGraph

        Returns
        -------
        proba : ndarray of shape (n_graphs, n_classes)
            Columns in the order of ``classes_``; rows sum to 1.
        """
        check_is_fitted(self)
        graphs = check_slide_graphs(X, type(self).__name__)
        if not graphs:
            return np.zeros((0, len(self.classes_)))
        _check_feature_length(
            graphs, self.n_node_features_, "the classifier was fitted with"
        )
        with _one_cpu_thread(self.device):
            logits = _logits(self.net_, self._dataset(graphs))
        # Models saved before calibration existed have no temperature.
        return softmax(logits / getattr(self, "temperature_", 1.0), axis=1)

    def ood_score(self, X):
        """How unlike the training slides each slide is.

        Parameters
        ----------
        X : list of SlideGraph
            With a ``profile`` each when the training graphs had one (graphs
            from :class:`PearsonGraphBuilder` do).

        Returns
        -------
        score : ndarray of shape (n_graphs,)
            The larger of two distances to the training slides, each over
            its median among them (about 1 for a typical training slide;
            larger is more unlike): of the slide's nodes (the median over
            them of their squared Mahalanobis distance to the training
            nodes), and of its profile. Compare with ``ood_threshold_``.
        """
        check_is_fitted(self, "ood_threshold_")
        graphs = check_slide_graphs(X, type(self).__name__)
        _check_feature_length(
            graphs, self.n_node_features_, "the classifier was fitted with"
        )
        density = OODDensity.from_fitted(self)
        profiles = None
        if density.profile_location is not None:
            profiles = check_profiles(
                graphs, len(density.profile_location), "the classifier was fitted with"
            )
        nodes = [self._standardise(g.features) for g in graphs]
        return (density.distances(nodes, profiles) / density.scale).max(axis=1)

    def is_out_of_distribution(self, X):
        """Whether each slide's :meth:`ood_score` is above ``ood_threshold_``.

        Parameters
        ----------
        X : list of SlideGraph

        Returns
        -------
        flag : ndarray of shape (n_graphs,), dtype bool
        """
        return self.ood_score(X) > self.ood_threshold_

    def predict(self, X):
        """The most probable class of each slide.

        Parameters
        ----------
        X : list of SlideGraph
            As for :meth:`predict_proba`.

        Returns
        -------
        y : ndarray of shape (n_graphs,)
            Labels from ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.random_state is None
        return tags


class _StratifiedSplit:
    """skorch ``train_split``: a seeded split stratified by the graphs' labels
    (unstratified when a class is too small)."""

    def __init__(self, fraction, seed):
        self.fraction = fraction
        self.seed = seed

    def __call__(self, dataset, y=None, **fit_params):
        from torch.utils.data import Subset

        if max(1, round(self.fraction * len(dataset))) >= len(dataset):
            raise ValueError(
                f"GCNSlideClassifier: validation_fraction={self.fraction} leaves no "
                f"training graph out of {len(dataset)}."
            )
        train, valid = stratified_split(dataset.labels, self.fraction, self.seed)
        return Subset(dataset, train), Subset(dataset, valid)


def _logits(net, dataset):
    """The network's class logits for a dataset of graphs, float64."""
    return net.forward(dataset, training=False).numpy().astype(np.float64)


def _check_feature_length(graphs, expected, reference):
    for graph in graphs:
        if graph.n_features != expected:
            raise ValueError(
                f"Graph {graph.name!r} has {graph.n_features} node features; "
                f"{reference} {expected}."
            )


@contextmanager
def _one_cpu_thread(device):
    """Run torch on one intra-op thread on CPU, restoring the setting after."""
    if torch.device(device).type != "cpu":
        yield
        return
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n_threads)
