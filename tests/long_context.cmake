# Long-context tests (issue 17): the trainer's blocked attention and YaRN
# against the engine; the needle-in-a-haystack command.
dsv3_test(long_context_train_test long_context_train_test.cc)
target_link_libraries(long_context_train_test PRIVATE dsv3_train)
