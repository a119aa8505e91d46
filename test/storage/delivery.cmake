# delivery: the queue, entry format and metadata rule (offline); the S3 sink against the
# real server of the s3_server_start fixture (docs/storage.md).
sgw_test(delivery_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/delivery_queue_test.cc DEPS sgw_delivery)
# s3_sink: S3Sink over an in-memory S3 that injects faults (lost replies, SSE-KMS ETags, errors).
sgw_test(s3_sink_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/s3_sink_test.cc DEPS sgw_delivery)
# partials: keys, bodies, metadata, file names, the shipper's cuts and clean-up, the node_lost event
# (docs/failover.md)
sgw_test(partials_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/partials_test.cc
         ${CMAKE_CURRENT_LIST_DIR}/segment_shipper_test.cc DEPS sgw_partials)
