"""NeuralForecast's shared building blocks (its neuralforecast/common/), one file per NF file."""
