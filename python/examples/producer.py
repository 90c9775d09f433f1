import mqclient as blazingmq

queue_uri = "bmq://bmq.tutorial.workqueue/example_queue"

with blazingmq.Session(blazingmq.session_events.log_session_event) as session:
    session.open_queue(queue_uri, write=True)
    session.post(queue_uri, b"Some message here")
    session.close_queue(queue_uri)
