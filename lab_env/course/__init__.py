"""The course: the learner's notebooks (``exercises``), ``lab check`` and ``lab restore``
(``grading``, over the kept ``states``), and one module of ``checks`` per milestone."""
