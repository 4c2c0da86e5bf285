"""The one native CPU library of the kernels (see :mod:`kernels.native.library`)."""
