import mqclient as blazingmq

queue_uri = "bmq://bmq.tutorial.workqueue/example_queue"


def on_ack_callback(ack):
    if ack.status != blazingmq.AckStatus.SUCCESS:
        print("Post failed")
    print("Post success")


with blazingmq.Session(blazingmq.session_events.log_session_event) as session:
    session.open_queue(queue_uri, write=True)
    session.post(queue_uri, b"Some message here", on_ack=on_ack_callback)
    session.close_queue(queue_uri)
