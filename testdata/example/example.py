"""The blog's example Lambda handler: proves pandas and requests import from the image."""
import logging

import pandas
import requests

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def lambda_handler(event, context):
    logger.info("pandas version: %s", pandas.__version__)
    logger.info("requests version: %s", requests.__version__)
    print("pandas version: %s" % pandas.__version__)
    print("requests version: %s" % requests.__version__)
    return "Hello World"
