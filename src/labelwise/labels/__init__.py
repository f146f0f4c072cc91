"""Labels: the schema, the table readers, label statistics, the leak-free split, score files and
the label powerset. numpy + pandas only: nothing here imports Keras or TensorFlow."""
