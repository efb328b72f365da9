"""Running a sweep: the Ray Tune driver, its state on disk, the trainable, one trial, the search
algorithm, the live view and graceful stops."""
