//! The topology as RabbitMQ definitions, shipped as
//! `deploy/rabbitmq/definitions.json` (a test checks it is current).

use serde_json::{Value, json};

use super::{Arg, Topology};

impl Topology {
    /// RabbitMQ definitions (import with `rabbitmqctl import_definitions` or the
    /// management UI) for vhost `/`.
    pub fn definitions(&self) -> Value {
        let arguments = |args: &[(&str, Arg)]| -> Value {
            args.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Arg::Str(s) => json!(s),
                        Arg::Int(i) => json!(i),
                        Arg::Bool(b) => json!(b),
                    };
                    ((*k).to_owned(), v)
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        json!({
            "vhosts": [{"name": "/"}],
            "exchanges": self.exchanges.iter().map(|e| json!({
                "name": e.name, "vhost": "/", "type": e.kind,
                "durable": true, "auto_delete": false, "internal": false, "arguments": {}
            })).collect::<Vec<_>>(),
            "queues": self.queues.iter().map(|q| json!({
                "name": q.name, "vhost": "/", "durable": true, "auto_delete": false,
                "arguments": arguments(&q.arguments)
            })).collect::<Vec<_>>(),
            "bindings": self.bindings.iter().map(|b| json!({
                "source": b.exchange, "vhost": "/", "destination": b.queue,
                "destination_type": "queue", "routing_key": b.routing_key,
                "arguments": b.headers.iter().map(|(k, v)| ((*k).to_owned(), json!(v)))
                    .collect::<serde_json::Map<_, _>>()
            })).collect::<Vec<_>>(),
        })
    }
}
