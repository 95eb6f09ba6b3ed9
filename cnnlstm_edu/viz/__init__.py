"""Pictures of a CNN-LSTM at work: what each frame does to the CNN, the state and the belief.

viz only draws; what it draws is computed in :mod:`cnnlstm_edu.analysis` (probes, beliefs,
confusion matrices, accuracy per step), whose names are re-exported here for the lessons. Two
kinds of pictures, for two kinds of readers:

- **matplotlib figures** for notebooks and reports, built without ``pyplot`` (a web server can
  draw from several threads at once), each showing itself as a PNG in Jupyter (:mod:`.figure`):

  - one model at work (:mod:`.model_figures`): :func:`plot_activations`, :func:`plot_hidden`,
    :func:`plot_beliefs`, :func:`plot_gates`, :func:`plot_recurrent_parameters`;
  - training (:mod:`.training_figures`): :func:`plot_curves`, :func:`plot_runs`,
    :func:`plot_confusion`, :func:`plot_step_accuracy`, :func:`plot_fold_vs_loop`;
  - sequences of frames (:mod:`.sequence_figures`): :func:`plot_frames`, :func:`plot_examples`,
    :func:`plot_forecast`, :func:`plot_chunks`.
- **plain RGB arrays** for live views that refresh several times a second (the app,
  :mod:`.images`): :func:`activation_mosaic` and :func:`heatmap_image` cost a millisecond, where
  drawing a matplotlib figure costs a hundred; :func:`upscale` is the one image upscaler.

The shape pipeline figure is ``ShapeTrace.plot`` (:mod:`cnnlstm_edu.trace`).

>>> import torch
>>> from cnnlstm_edu.models import build_model
>>> seq = torch.rand(4, 1, 14, 14)                  # (T, C, H, W): one digit's four quadrants
>>> p = probe(build_model("cnn_lstm"), seq)
>>> [tuple(m.shape) for m in p.maps]                 # per conv block: (T, C', H', W')
[(4, 16, 7, 7), (4, 32, 3, 3)]
>>> activation_mosaic(p).shape                       # (height, width, RGB)
(180, 798, 3)
>>> plot_beliefs(p)._repr_png_()[:4]                 # what Jupyter shows: a PNG
b'\\x89PNG'
"""

from ..analysis import Probe, accuracy_per_step, beliefs, confusion_matrix, probe, recurrent_layer
from ..course import show_figures_in_jupyter
from .figure import new_figure, shows_as_png
from .images import activation_mosaic, heatmap_image, upscale
from .model_figures import plot_activations, plot_beliefs, plot_gates, plot_hidden, plot_recurrent_parameters
from .sequence_figures import plot_chunks, plot_examples, plot_forecast, plot_frames
from .training_figures import plot_confusion, plot_curves, plot_fold_vs_loop, plot_runs, plot_step_accuracy

__all__ = [
    # drawing
    "plot_activations", "plot_hidden", "plot_beliefs", "plot_gates", "plot_recurrent_parameters",
    "plot_curves", "plot_runs", "plot_confusion", "plot_step_accuracy", "plot_fold_vs_loop",
    "plot_frames", "plot_examples", "plot_forecast", "plot_chunks",
    "activation_mosaic", "heatmap_image", "upscale", "new_figure", "shows_as_png",
    # re-exported from cnnlstm_edu.analysis and cnnlstm_edu.course, where they live
    "Probe", "probe", "recurrent_layer", "confusion_matrix", "beliefs", "accuracy_per_step",
    "show_figures_in_jupyter",
]
