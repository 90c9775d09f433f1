import mqclient as blazingmq
import signal
import threading

def on_message_callback(message, message_handle):
    print(message.data)
    message_handle.confirm()

event = threading.Event()

def handler(signum, frame):
    print("Goodbye!")
    event.set()

signal.signal(signal.SIGINT, handler)

queue_uri = "bmq://bmq.tutorial.workqueue/example_queue"

with blazingmq.Session(blazingmq.session_events.log_session_event,
                       on_message=on_message_callback) as session:
    session.open_queue(queue_uri, read=True)
    event.wait()
    session.configure_queue(queue_uri, blazingmq.QueueOptions(0, 0, 0))
    session.close_queue(queue_uri)
