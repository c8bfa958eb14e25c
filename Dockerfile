# Streamwise in a container: the package with its dependencies, for the API nodes and workers of
# compose.yaml (docs/scale-out.md). The embedded local model's weights are not included.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
ENV STREAMWISE_DATA_DIR=/data
VOLUME /data
EXPOSE 3000
CMD ["streamwise", "start", "--host", "0.0.0.0", "--port", "3000"]
