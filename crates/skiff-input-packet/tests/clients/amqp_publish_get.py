# A real AMQP 0-9-1 client (pika) for live_db.rs: declare, publish 3, basic.get 3, delete.
# Run by the venv of scripts/ensure-test-deps; exits non-zero when the server misbehaves.
import pika
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 5672, "/", pika.PlainCredentials("guest", "guest")))
ch = c.channel()
ch.queue_declare(queue="skiff.live", auto_delete=False)
ch.queue_purge(queue="skiff.live")
for body in (b"a", b"bb" * 10, b"c" * 300):
    ch.basic_publish(exchange="", routing_key="skiff.live", body=body, properties=pika.BasicProperties(content_type="text/plain"))
got = []
while len(got) < 3:
    m, props, body = ch.basic_get(queue="skiff.live", auto_ack=True)
    if m is not None:
        got.append(body)
assert [len(b) for b in got] == [1, 20, 300], got
ch.queue_delete(queue="skiff.live")
c.close()
print("ok")
