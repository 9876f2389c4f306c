"""fusetrain.service: jobs, persistence, execution and the gRPC servicer of fusetrain.

Layers, each importing only those below it:
    server.py    builds the grpc server: servicer, health, reflection, signals (`serve()`)
    servicer.py  thin TrainingService: converts messages, calls the job manager; errors.py maps
                 domain exceptions to status codes in one interceptor
    jobs.py      JobManager: the lifecycle, no grpc
    store.py     SQLite (WAL) and content-addressed files
    executor.py  the Executor interface (submit, cancel, await, close); pool.py implements it
                 with spawned worker processes running jobfn.run_job
"""
