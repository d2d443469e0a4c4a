"""Client library of ensembled (docs/protocol.md, wire protocol v2).

- Subscriber: follows the daemon's publications with a last-value cache per
  task, exact task matching and versions that never go backwards.
- Router: models_to_ask(query) by the published exploration rule,
  combine(answers) with the published combiner, report(...) that never
  blocks.
- Producer: prediction and label events, alone or in batches, on a PUSH
  socket that never blocks the caller.
- JetStreamProducer, KVReader: the same events into a NATS JetStream
  stream, and the published bodies out of a key-value bucket
  (docs/scale.md).

The rules themselves (exploration hash, agreement patterns, combiners,
topics, names) are plain functions in ensembled.protocol and
ensembled.combine.
"""
from .combine import Combiner, agreement_key, agreement_pattern, vote
from .jetstream import Connection as NatsConnection, JetStreamProducer, KVReader, NatsError
from .producer import Producer
from .protocol import (PROTOCOL_VERSION, TOPIC_PREFIX, explore_hash, explores, name_valid,
                       query_key, task_of_topic, topic)
from .router import Router
from .subscriber import Subscriber

__all__ = ["Combiner", "JetStreamProducer", "KVReader", "NatsConnection", "NatsError", "Producer", "Router",
           "Subscriber", "PROTOCOL_VERSION", "TOPIC_PREFIX", "agreement_key", "agreement_pattern",
           "explore_hash", "explores", "name_valid", "query_key", "task_of_topic", "topic",
           "vote"]
