"""The taxonomy: class names are the error names Step Functions matches."""

from worldgen import errors


def test_every_error_class_name_is_in_exactly_one_family():
    transient = {cls.__name__ for cls in errors.TRANSIENT_ERRORS}
    permanent = {cls.__name__ for cls in errors.PERMANENT_ERRORS}
    assert not transient & permanent
    assert all(issubclass(cls, errors.TransientError) for cls in errors.TRANSIENT_ERRORS)
    assert all(issubclass(cls, errors.PermanentError) for cls in errors.PERMANENT_ERRORS)


def test_the_architecture_names_are_all_present():
    names = set(errors.transient_error_names()) | set(errors.permanent_error_names())
    for name in (
        "ModelRateLimited", "ModelOverloaded", "ModelUnavailable", "ModelTimeout", "DatabaseUnavailable",
        "Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException", "States.Timeout", "PhaseDependencyMissing", "InvalidModelOutput",
        "ModelRefused", "ModelOutputTruncated", "CampaignNotFound", "ConfigurationError", "GenerationCancelled",
    ):  # fmt: skip
        assert name in names


def test_errors_carry_details_for_operators_and_the_model():
    error = errors.InvalidModelOutput("bad", problems=["races[key=x].size: 'huge' is not one of [...]"])
    assert error.message == "bad"
    assert error.details["problems"][0].startswith("races")
