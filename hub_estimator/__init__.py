"""hub-estimator: TF1 Hub modules for tf.estimator users."""
