"""ReliabilityDiagramDisplay: is a multi-class probability right as often as it says?"""

import numpy as np

from ..metrics import expected_calibration_error, reliability_curve

__all__ = ["ReliabilityDiagramDisplay"]


class ReliabilityDiagramDisplay:
    """Multi-class reliability diagram, in the style of scikit-learn's
    :class:`~sklearn.calibration.CalibrationDisplay`.

    The top label's accuracy against its confidence, per confidence bin
    (:func:`~sklearn_gastric.metrics.reliability_curve`), beside the
    diagonal of perfect calibration, with the number of samples per bin
    below and the expected calibration error in the legend. Optionally,
    each class's one-vs-rest curve
    (:func:`sklearn.calibration.calibration_curve`).

    Build it with :meth:`from_predictions` or :meth:`from_estimator`.

    Parameters
    ----------
    confidence, accuracy, count : ndarray of shape (n_nonempty_bins,)
        The curve (:func:`~sklearn_gastric.metrics.reliability_curve`).
    ece : float
        Its expected calibration error.
    per_class : dict of str to (ndarray, ndarray), default=None
        Per class, ``(mean predicted probability, fraction of positives)``.
    name : str, default=None
        Name of the model, in the legend.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The top-label curve.
    class_lines_ : list of matplotlib Line2D
        The one-vs-rest curves (empty without ``per_class``).
    ax_ : matplotlib Axes
        The diagram.
    count_ax_ : matplotlib Axes
        The histogram of samples per bin, below the diagram.
    figure_ : matplotlib Figure
        The figure holding both axes.
    ece_ : float
        The expected calibration error shown in the legend.

    See Also
    --------
    sklearn_gastric.metrics.expected_calibration_error : The number in the
        legend.
    sklearn_gastric.metrics.reliability_curve : The points of the curve.
    sklearn.calibration.CalibrationDisplay : The binary, one-class version.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_gastric.visualization import ReliabilityDiagramDisplay
    >>> proba = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]
    >>> display = ReliabilityDiagramDisplay.from_predictions(
    ...     ["a", "b", "b", "b"], proba, n_bins=5, name="model")
    >>> round(display.ece_, 3), display.line_.get_label()
    (0.35, 'model (ECE 0.350)')
    >>> import matplotlib.pyplot as plt
    >>> plt.close(display.figure_)
    """

    def __init__(self, confidence, accuracy, count, ece, *, per_class=None, name=None):
        self.confidence = confidence
        self.accuracy = accuracy
        self.count = count
        self.ece = ece
        self.per_class = per_class
        self.name = name

    @property
    def ece_(self):
        """The expected calibration error shown."""
        return self.ece

    def plot(self, ax=None, *, name=None, **kwargs):
        """Draw the diagram.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes of the diagram; the histogram goes below it. A new figure
            when None.
        name : str, default=None
            Overrides the name given at construction.
        **kwargs
            Passed to :meth:`matplotlib.axes.Axes.plot` for the top-label
            curve.

        Returns
        -------
        display : ReliabilityDiagramDisplay
        """
        import matplotlib.pyplot as plt
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 5.5))
        name = self.name if name is None else name
        label = (
            f"ECE {self.ece:.3f}" if name is None else f"{name} (ECE {self.ece:.3f})"
        )
        ax.plot([0, 1], [0, 1], "k:", label="perfectly calibrated")
        self.line_ = ax.plot(
            self.confidence,
            self.accuracy,
            "s-",
            label=label,
            **{"color": "#0072b2", **kwargs},
        )[0]
        self.class_lines_ = []
        for index, (class_name, (mean_proba, positives)) in enumerate(
            (self.per_class or {}).items()
        ):
            (line,) = ax.plot(
                mean_proba,
                positives,
                "o--",
                lw=1,
                ms=3,
                alpha=0.8,
                color=f"C{index + 1}",
                label=f"{class_name} vs rest",
            )
            self.class_lines_.append(line)
        ylabel = "fraction correct (top label)"
        xlabel = "confidence (highest probability)"
        if self.class_lines_:
            ylabel += "\nor fraction of positives (vs rest)"
            xlabel += " or predicted probability"
        ax.set(xlim=(0, 1), ylim=(0, 1.02), ylabel=ylabel)
        ax.legend(loc="upper left", fontsize=8)
        ax.tick_params(labelbottom=False)
        count_ax = make_axes_locatable(ax).append_axes("bottom", size="25%", pad=0.1)
        width = 0.9 / max(len(self.confidence), 10)
        count_ax.bar(self.confidence, self.count, width=width, color="#0072b2")
        count_ax.set(xlim=(0, 1), xlabel=xlabel)
        count_ax.set_ylabel("count\n(top label)", fontsize=8)
        self.ax_ = ax
        self.count_ax_ = count_ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_predictions(
        cls,
        y_true,
        y_proba,
        *,
        labels=None,
        n_bins=10,
        strategy="uniform",
        per_class=False,
        name=None,
        ax=None,
        **kwargs,
    ):
        """Draw the reliability diagram of predicted probabilities.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
        y_proba : array-like of shape (n_samples, n_classes)
        labels : array-like of shape (n_classes,), default=None
            The label of each column (see
            :func:`~sklearn_gastric.metrics.reliability_curve`).
        n_bins : int, default=10
        strategy : {"uniform", "quantile"}, default="uniform"
        per_class : bool, default=False
            Add each class's one-vs-rest curve.
        name : str, default=None
        ax : matplotlib Axes, default=None
        **kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ReliabilityDiagramDisplay
        """
        from sklearn.calibration import calibration_curve

        confidence, accuracy, count = reliability_curve(
            y_true, y_proba, labels=labels, n_bins=n_bins, strategy=strategy
        )
        ece = expected_calibration_error(
            y_true, y_proba, labels=labels, n_bins=n_bins, strategy=strategy
        )
        curves = None
        if per_class:
            y_true = np.asarray(y_true)
            y_proba = np.asarray(y_proba, dtype=np.float64)
            labels = np.unique(y_true) if labels is None else np.asarray(labels)
            curves = {}
            for column, label in enumerate(labels):
                positives, mean_proba = calibration_curve(
                    y_true == label,
                    y_proba[:, column],
                    n_bins=n_bins,
                    strategy=strategy,
                )
                curves[str(label)] = (mean_proba, positives)
        display = cls(confidence, accuracy, count, ece, per_class=curves, name=name)
        return display.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, X, y, *, name=None, **kwargs):
        """Draw the reliability diagram of a fitted classifier on ``(X, y)``.

        Parameters
        ----------
        estimator : fitted classifier with ``predict_proba`` and ``classes_``
            A pipeline ending in one works.
        X : list of slides, graphs or an array
        y : array-like of shape (n_samples,)
        name : str, default=None
            Defaults to the estimator's class name.
        **kwargs
            Passed to :meth:`from_predictions`.

        Returns
        -------
        display : ReliabilityDiagramDisplay
        """
        if name is None:
            name = type(estimator).__name__
        return cls.from_predictions(
            y,
            estimator.predict_proba(X),
            labels=estimator.classes_,
            name=name,
            **kwargs,
        )
